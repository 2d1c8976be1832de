"""The registry's blob store (base.py: the interface; local.py: the data dir; s3.py: a bucket).

`blob_store` is the configured store, from the backend and options of `STORAGES["blobs"]`
(hub/settings.py): the data dir's `blobs/` folder with uploads in `UPLOAD_STAGING_DIR`, or the
`HUB_S3_*` bucket under `blobs/`, uploads included. It is the only thing in Wharf that touches blob
bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.functional import LazyObject, empty

from registry.blobstore.base import BlobStore, UploadBusy, UploadGone, UploadState, UploadWriter

__all__ = ["BlobStore", "UploadBusy", "UploadGone", "UploadState", "UploadWriter", "blob_store", "store_from_settings"]

S3_BACKENDS = {"storages.backends.s3.S3Storage", "storages.backends.s3boto3.S3Boto3Storage"}
FILESYSTEM_BACKENDS = {"django.core.files.storage.FileSystemStorage",
                       "django.core.files.storage.filesystem.FileSystemStorage"}


def store_from_settings() -> BlobStore:
    config = settings.STORAGES["blobs"]
    options = config.get("OPTIONS", {})
    if config["BACKEND"] in S3_BACKENDS:
        from registry.blobstore.s3 import S3BlobStore  # boto3 only where S3 is configured

        return S3BlobStore(
            bucket=options["bucket_name"], prefix=options.get("location", ""),
            endpoint_url=options.get("endpoint_url"), region_name=options.get("region_name"),
            access_key=options.get("access_key") or _aws("AWS_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
            secret_key=options.get("secret_key") or _aws("AWS_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
            session_token=options.get("security_token") or _aws("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"),
            profile=options.get("session_profile") or _aws("AWS_S3_SESSION_PROFILE"),
            url_expires=options.get("querystring_expire", 600),
        )
    if config["BACKEND"] in FILESYSTEM_BACKENDS:
        from registry.blobstore.local import LocalBlobStore

        return LocalBlobStore(root=options.get("location") or settings.MEDIA_ROOT,
                              staging=Path(settings.UPLOAD_STAGING_DIR))
    raise ImproperlyConfigured(f"STORAGES['blobs']: no blob store for {config['BACKEND']}")


def _aws(*names: str) -> str | None:
    """A credential where django-storages looks for it (settings, then the environment), so what
    configured it configures the store; None leaves it to boto3's own chain (profiles, roles)."""
    for name in names:
        if value := getattr(settings, name, None):
            return value
    for name in names:
        if value := os.environ.get(name):
            return value
    return None


class _ConfiguredStore(LazyObject):
    def _setup(self) -> None:
        self._wrapped = store_from_settings()


blob_store: BlobStore = _ConfiguredStore()  # type: ignore[assignment]


def _forget_store(*, setting: str, **kwargs) -> None:
    """Tests change the settings the store is made from: the next use makes it again."""
    if setting in ("STORAGES", "UPLOAD_STAGING_DIR", "MEDIA_ROOT"):
        blob_store._wrapped = empty  # type: ignore[attr-defined]


setting_changed.connect(_forget_store)
