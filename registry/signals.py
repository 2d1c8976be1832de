"""Events other apps listen to (webhooks, statistics). Sent inside the transaction that made them."""

from django.dispatch import Signal

# repository, tag (Tag), manifest (Manifest), pusher (User | None)
image_pushed = Signal()
# repository, tag_name (str), digest (str), user (User | None)
tag_deleted = Signal()
# repository_snapshot (dict: namespace, name, is_private, ...), user (User | None).
# Sent before the rows go, inside the deleting transaction.
repository_deleted = Signal()
