import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
application = get_wsgi_application()


def _make_keys() -> None:
    """Make every key the site signs or encrypts with (when the environment does not give it) before the
    first request, so that the keys/ folder copied from the first node to a new one holds them all
    (README, "Scale-out"): a key made later, on first use, would differ from node to node."""
    from django.conf import settings

    from builds.signing import image_signing_key
    from lib import crypto
    from registry.tokens import get_signing_key

    crypto.keys()
    get_signing_key()
    image_signing_key(settings.KEYS_DIR)


_make_keys()


def _refuse_taken_mirror_prefixes() -> None:
    """Issue 22: a mirror prefix that is already a namespace stops the start (README, "Pull-through cache")."""
    from django.conf import settings
    from django.db import connection

    from registry.mirror.checks import refuse_to_start

    if settings.HUB_MIRRORS:
        try:
            refuse_to_start()
        finally:
            connection.close()  # opened while loading the site: no request's connection


_refuse_taken_mirror_prefixes()
