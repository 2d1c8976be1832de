"""What repositories announce; higher apps listen (registry: blobs and uploads, webhooks: notifications).

Sent inside the deleting transaction, before the rows go.
"""

from django.dispatch import Signal

# repositories (list[Repository]). A receiver may return a callable: the sender calls each one once
# the rows are gone (registry: sweep the blobs only these repositories linked).
repositories_deleting = Signal()
# repository_snapshot (dict: namespace, name, is_private, ...), user (User | None). Only for a
# repository people could see (not for a push's pending one).
repository_deleted = Signal()
