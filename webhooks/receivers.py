"""Registry events in, deliveries out. Runs inside the transaction that made the event.

A webhook problem never fails a push: each receiver works in a savepoint and logs what went wrong.
"""

from __future__ import annotations

import logging

from django.db import transaction

from webhooks import services

logger = logging.getLogger(__name__)


def on_image_pushed(sender, *, repository, tag, manifest, pusher=None, **kwargs) -> None:
    try:
        with transaction.atomic():
            services.push_emit(repository=repository, tag=tag, manifest=manifest, pusher=pusher)
    except Exception:
        logger.exception("could not create webhook deliveries for a push to %s", repository)


def on_tag_deleted(sender, *, repository, tag_name, digest, user=None, **kwargs) -> None:
    try:
        with transaction.atomic():
            services.tag_delete_emit(repository=repository, tag_name=tag_name, digest=digest, user=user)
    except Exception:
        logger.exception("could not create webhook deliveries for deleting %s:%s", repository, tag_name)


def on_repository_deleted(sender, *, repository_snapshot, user=None, **kwargs) -> None:
    try:
        with transaction.atomic():
            services.repository_delete_emit(repository_snapshot=repository_snapshot, user=user)
    except Exception:
        logger.exception("could not create webhook deliveries for deleting %s", repository_snapshot.get("name"))
