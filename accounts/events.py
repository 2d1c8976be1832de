"""What accounts announce; higher apps listen (repositories deletes a namespace's repositories).

Both are sent inside the deleting transaction, with the namespace's row locked, before the namespace
becomes a tombstone. A receiver refuses the deletion by raising ValidationError (the transaction
rolls back). Receivers that end credentials are in `accounts/signals.py`.
"""

from django.dispatch import Signal

# namespace (Namespace), user (the User being deleted). Everything the user owns goes.
user_deleting = Signal()
# namespace (Namespace). Refuse while the organization owns something visible; the rest goes with it.
organization_deleting = Signal()
