"""Start-up check: a mirror prefix must not already be a user's or an organization's namespace.

Registered in registry/apps.py; `manage.py migrate`, `manage.py check` and `manage.py serve` run it,
and every web process runs it as it loads (hub/wsgi.py calls refuse_to_start), so Wharf refuses to
start while a configured prefix would shadow (or be shadowed by) a namespace, however it is started
(gunicorn alone in a container or pod never runs Django's checks).
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError


@register()
def mirror_prefixes_are_free(app_configs=None, **kwargs) -> list[Error]:
    prefixes = list(settings.HUB_MIRRORS)
    if not prefixes:
        return []
    from accounts.models import Namespace

    try:
        taken = list(Namespace.objects.filter(name__in=prefixes).exclude(kind=Namespace.Kind.MIRROR)
                     .values_list("name", "kind"))
    except DatabaseError:  # no database yet (before the first migrate): nothing can be taken
        return []
    return [
        Error(f"HUB_MIRRORS: the mirror prefix {name!r} is already the namespace of a {kind} "
              "(or was one): choose another prefix",
              hint="A mirror prefix is a reserved namespace; rename the prefix in HUB_MIRRORS.",
              id="wharf.mirror.E001")
        for name, kind in taken
    ]


def refuse_to_start() -> None:
    """Raise ImproperlyConfigured when a mirror prefix is a namespace (a gunicorn worker that raises while
    loading the site fails to boot, and gunicorn stops). One query, only with HUB_MIRRORS set."""
    errors = mirror_prefixes_are_free()
    if errors:
        raise ImproperlyConfigured(" ".join(error.msg for error in errors))
