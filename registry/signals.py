"""What the registry announces; higher apps listen (webhooks). Sent inside the transaction that made them.

Repository deletion is announced by repositories (repositories/signals.py)."""

from django.dispatch import Signal

# repository, tag (Tag), manifest (Manifest), pusher (User | None)
image_pushed = Signal()
# repository, tag_name (str), digest (str), user (User | None)
tag_deleted = Signal()
