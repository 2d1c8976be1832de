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


def _warm_up() -> None:
    """Do before the first request what a worker's first requests would each pay once: importing every
    URL configuration and the views they name (~30 ms), and the token signature's first use (~10 ms).
    A gunicorn worker loads this module when it starts; after a restart or a deploy, the first pull of
    each worker was ~100 ms slower than the next."""
    from django.urls import get_resolver

    from registry.tokens import warm_up

    def import_patterns(resolver) -> None:
        for pattern in resolver.url_patterns:
            if hasattr(pattern, "url_patterns"):
                import_patterns(pattern)

    import_patterns(get_resolver())
    warm_up()


_warm_up()
