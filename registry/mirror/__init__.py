"""Wharf as a pull-through cache of another registry (issue 22)."""
