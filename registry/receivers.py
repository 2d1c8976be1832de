"""The registry's side of repositories' announcements (repositories/signals.py); connected in RegistryConfig.ready()."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from registry.blobstore import blob_store
from registry.models import Blob, BlobUpload
from registry.services.gc import sweep_unlinked_blobs


def on_repositories_deleting(sender, *, repositories: list, **kwargs) -> Callable[[], None]:
    """Before the rows go: note the blobs they link and drop their uploads' bytes (a PATCH still
    writing finds its upload gone and writes nothing). Once they are gone: sweep the blobs no other
    repository uses."""
    blob_ids = list(Blob.objects.filter(repository_links__repository__in=repositories).values_list("pk", flat=True))
    for upload_id in BlobUpload.objects.filter(repository__in=repositories).values_list("pk", flat=True):
        blob_store.discard_upload(upload_id)
    return partial(sweep_unlinked_blobs, blob_ids)
