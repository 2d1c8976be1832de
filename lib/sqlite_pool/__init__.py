"""SQLite with a per-process pool of open connections: ENGINE "lib.sqlite_pool" (see base.py)."""
