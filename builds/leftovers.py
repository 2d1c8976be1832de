"""What builds left in the work dir when nothing of them is left to clean it (no Django here).

A killed worker's builds are cleaned through their slot records (`BuildSandbox.clean_stale_slots`),
but those live in /run (SLOT_DIR), which a reboot empties: after a machine crash, each build's disk
image, allocated to its full size (HUB_BUILD_DISK_MB), stays in the work dir with nothing naming it.
`clean_work_root` removes, at the worker's start, the disk images and empty workspace folders there
that no running build holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import subprocess
import time
from pathlib import Path

from builds.sandbox import DEFAULT_SLOTS, SLOT_DIR

PREFIX = "wharf-build-"
DISK_SUFFIX = ".disk"
# An empty workspace younger than this may be a build that is starting (its folder made, its slot not
# yet taken: it waits up to a minute for one); a disk image is made only once its slot names it.
STARTING_SECONDS = 600


def held_workspaces(*, slot_dir: Path = SLOT_DIR, slots: int = DEFAULT_SLOTS) -> set[str]:
    """The names of the workspaces running builds hold (their slot locked, their record naming them)."""
    names = set()
    for slot in range(slots):
        path = slot_dir / f"slot-{slot}.lock"
        try:
            handle = open(path)  # noqa: SIM115 - closed below, which also drops a lock taken here
        except FileNotFoundError:
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                names.add(Path(handle.read().strip()).name)  # a running build's (its record is written first)
    return names


def clean_work_root(work_root: Path, *, slot_dir: Path = SLOT_DIR, slots: int = DEFAULT_SLOTS,
                    starting_seconds: float = STARTING_SECONDS) -> list[str]:
    """Remove what builds left in `work_root` that no running build holds: their disk images (unmounted
    first, if still mounted) and their empty workspace folders. Only this user's own regular files and
    folders named as the runner names them are touched, never through a symlink, and a folder only if
    empty (rmdir). Returns the names removed."""
    try:
        # Listed before the slots are read: a disk image that exists now was named in its slot's record
        # before it was made, so a build that holds it is seen below.
        candidates = sorted(name for name in os.listdir(work_root) if name.startswith(PREFIX))
    except FileNotFoundError:
        return []
    held = held_workspaces(slot_dir=slot_dir, slots=slots)
    removed = []
    for name in candidates:
        workspace_name = name.removesuffix(DISK_SUFFIX)
        if workspace_name in held:
            continue
        path = work_root / name
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if info.st_uid != os.geteuid():
            continue
        workspace = work_root / workspace_name
        if name.endswith(DISK_SUFFIX) and stat.S_ISREG(info.st_mode):
            _unmount(workspace)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(name)
        elif stat.S_ISDIR(info.st_mode) and time.time() - info.st_mtime > starting_seconds:
            _unmount(workspace)
            with contextlib.suppress(OSError):  # not empty: not a workspace of a sandboxed build, kept
                path.rmdir()
                removed.append(name)
    return removed


def _unmount(workspace: Path) -> None:
    if not workspace.is_symlink() and os.path.ismount(workspace):
        subprocess.run(["umount", "-l", str(workspace)], capture_output=True, timeout=60)
