"""The builds' disks on the worker's disk: builds starting together keep the reserve free, and what builds
left in the work dir after a machine crash (no slot record names it any more) is removed at the worker's start."""

import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from builds.leftovers import clean_work_root
from builds.sandbox import BuildSandbox, Limits, SandboxUnavailable, sandbox_problem

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts and chown need root")
needs_sandbox = pytest.mark.skipif(shutil.which("bwrap") is None or os.geteuid() != 0,
                                   reason="bubblewrap and root are needed")
AN_HOUR_AGO = time.time() - 3600


@pytest.fixture
def small_disk(tmp_path):
    """A 256 MiB filesystem of its own (tmpfs: fallocate and statvfs behave as on a disk)."""
    folder = tmp_path / "small"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(folder)], check=True)
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=True)


@needs_root
def test_builds_starting_at_once_cannot_eat_the_reserve_together(tmp_path, small_disk, monkeypatch):
    monkeypatch.setenv("HUB_BUILD_DISK_RESERVE_MB", "100")  # 96 MiB + 100 MiB fit in 256 once, not twice
    allocate = os.posix_fallocate

    def slow_allocate(fd: int, offset: int, length: int) -> None:
        time.sleep(0.5)  # the other build has checked the free space by now, unless they take turns
        allocate(fd, offset, length)

    monkeypatch.setattr(os, "posix_fallocate", slow_allocate)
    results = []

    def start(number: int) -> None:
        sandbox = BuildSandbox(small_disk / f"wharf-build-{number}-x", limits=Limits(disk_bytes=96 << 20),
                               slot_dir=tmp_path / "slots", slots=2)
        try:
            sandbox._allocate_disk(small_disk / f"wharf-build-{number}-x.disk")
            results.append("allocated")
        except SandboxUnavailable as refused:
            results.append(str(refused))

    threads = [threading.Thread(target=start, args=(number,)) for number in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.sort()
    assert results[0] == "allocated" and results[1].startswith("not enough free disk for a build"), results
    assert "MiB are free (lower HUB_BUILD_DISK_MB" in results[1] and "HUB_BUILD_WORK_DIR" in results[1]
    stats = os.statvfs(small_disk)
    assert stats.f_bavail * stats.f_frsize >= 100 << 20  # the reserve is still free
    assert len(list(small_disk.glob("*.disk"))) == 1


@needs_sandbox
def test_a_crashed_machines_leftovers_are_removed_but_a_running_build_is_kept(tmp_path):
    assert sandbox_problem() is None
    work, slot_dir = tmp_path / "work", tmp_path / "slots"
    work.mkdir()
    running = BuildSandbox(Path(tempfile.mkdtemp(prefix="wharf-build-1-", dir=work)),
                           limits=Limits(disk_bytes=64 << 20), slot_dir=slot_dir, slots=2)
    running.open()
    # A build of before the reboot: its allocated disk image and its workspace folder, no slot record.
    stale = work / "wharf-build-2-abcdefgh"
    stale.mkdir()
    with open(work / "wharf-build-2-abcdefgh.disk", "wb") as image:
        os.posix_fallocate(image.fileno(), 0, 8 << 20)
    os.utime(stale, (AN_HOUR_AGO, AN_HOUR_AGO))
    try:
        assert clean_work_root(work, slot_dir=slot_dir, slots=2) == ["wharf-build-2-abcdefgh",
                                                                     "wharf-build-2-abcdefgh.disk"]
        assert sorted(path.name for path in work.iterdir()) == [running.workspace.name,
                                                                f"{running.workspace.name}.disk"]
        assert os.path.ismount(running.workspace)
    finally:
        running.close()


@needs_root
def test_only_the_workers_own_leftovers_are_removed(tmp_path):
    work, outside = tmp_path / "work", tmp_path / "outside"
    work.mkdir()
    outside.write_text("not the build's")
    (work / "wharf-build-3-young").mkdir()  # may be a build waiting for its slot
    full = work / "wharf-build-4-full"
    full.mkdir()
    (full / "kept").write_text("x")  # not an empty mount point: not a sandboxed build's workspace
    (work / "wharf-build-5-link.disk").symlink_to(outside)
    (work / "wharf-build-6-other.disk").write_text("someone else's")
    os.chown(work / "wharf-build-6-other.disk", 4321, 4321)
    (work / "other.disk").write_text("not named as builds are")
    old = work / "wharf-build-7-old"
    old.mkdir()
    for path in (full, old):
        os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO))
    assert clean_work_root(work, slot_dir=tmp_path / "slots", slots=2) == ["wharf-build-7-old"]
    assert sorted(path.name for path in work.iterdir()) == [
        "other.disk", "wharf-build-3-young", "wharf-build-4-full", "wharf-build-5-link.disk",
        "wharf-build-6-other.disk"]
    assert outside.read_text() == "not the build's" and (full / "kept").exists()


def test_the_disk_reserve_reaches_the_build_worker_that_serve_starts(monkeypatch):
    from builds.services import build_worker_environment

    monkeypatch.setenv("HUB_BUILD_DISK_RESERVE_MB", "4096")
    assert build_worker_environment()["HUB_BUILD_DISK_RESERVE_MB"] == "4096"


@needs_root
def test_the_slot_and_disk_locks_are_the_workers_alone(tmp_path):
    slot_dir = tmp_path / "slots"
    slot_dir.mkdir()
    for name in ("slot-0.lock", "disk.lock"):  # made before locks were closed to other users
        (slot_dir / name).write_text("")
        (slot_dir / name).chmod(0o644)
    sandbox = BuildSandbox(tmp_path / "wharf-build-9-x", limits=Limits(disk_bytes=1 << 20), slot_dir=slot_dir,
                           slots=1)
    sandbox._take_slot()
    try:
        sandbox._allocate_disk(tmp_path / "wharf-build-9-x.disk")
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in slot_dir.iterdir()}
        assert modes == {"slot-0.lock": 0o600, "disk.lock": 0o600}, modes
    finally:
        sandbox._slot_file.close()


def test_the_test_hubs_build_worker_gets_the_same_limits(tmp_path):
    """tests/live.py starts build workers for the live hubs the way `manage.py serve` does: every sandbox limit
    the hub is given reaches its worker (the disk reserve once did not)."""
    from builds.services import WORKER_ONLY_VARIABLES
    from tests.live import build_worker_environment as live_worker_environment

    hub = {"PORT": "8000", "HUB_DATA_DIR": str(tmp_path), **dict.fromkeys(WORKER_ONLY_VARIABLES, "7")}
    given = live_worker_environment(hub)
    assert {name: given.get(name) for name in WORKER_ONLY_VARIABLES} == dict.fromkeys(WORKER_ONLY_VARIABLES, "7")
