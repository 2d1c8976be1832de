"""The build sandbox: every step of a build (git fetch, buildah pull, buildah bud, buildah push) runs in
a bubblewrap sandbox of its own; no Django here.

What a build gets (`BuildSandbox`):
- its own disk: an ext4 file of `disk_bytes`, allocated up front (never sparse: a build cannot fill the
  host's disk, and one that does not fit is refused before it starts), loop-mounted (nodev) as its
  workspace, so filling it stops at the limit and nothing is written anywhere else;
- its own id range: a slot (an flock'ed file) picks 65,536 host uids and gids out of the range
  reserved in /etc/subuid and /etc/subgid for the build worker's user (`provision()`); the buildah
  steps run as "root" of a user namespace mapped onto that range, so they own nothing on the host,
  have no capability over it, and cannot signal or ptrace another build (another range) or the hub;
- its own cgroups (v1 or v2): a pids limit (fork bombs), a memory limit, a CPU quota and a low
  CPU weight, and a way to kill everything left of the build whatever it double-forked;
- in each step, a mount namespace showing only read-only /usr and a few /etc files, a fresh /tmp,
  /proc of its own pid namespace, a minimal /dev, and the parts of its workspace that step needs
  (the bud step never sees the registry credentials, the deploy key, the data dir, the hub's source
  or another build); no network at all for `buildah bud` (RUN steps included), or with
  HUB_BUILD_RUN_NETWORK=public a network namespace of its own that slirp4netns wires to the outside
  and iptables (set from outside, before it runs) limits to public addresses; a seccomp filter
  (`builds.seccomp`); `--die-with-parent`, so killing the step's process group ends its sandbox.

The fetch of a remote source runs in the build's user namespace too, with the host's network (to
reach the pinned address); only the fetch of a local source (under HUB_BUILD_LOCAL_ROOTS, which the
worker may read and the build's uids may not) runs as the worker's own user, with every capability
dropped, no network and the same mount confinement. Everything needs root (loop mounts, cgroups, id maps):
`sandbox_problem()` says what is missing, and the worker refuses to build without it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import platform
import pwd
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builds.seccomp import filter_program

RANGE_START = 0x70000000  # 1,879,048,192: far above the ranges useradd hands out (100000 up)
RANGE_SIZE = 65536
DEFAULT_SLOTS = 16
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_NAME = "wharf-builds"
SLOT_DIR = Path("/run/wharf-builds")  # one set of slots per machine: the id ranges and cgroups are the machine's
NAME = "bubblewrap"
ETC_FILES = ("passwd", "group", "nsswitch.conf", "hosts", "resolv.conf", "ld.so.cache", "localtime", "containers",
             "ssl", "ca-certificates", "alternatives", "gitconfig", "ssh/ssh_known_hosts")
MKFS_TIMEOUT = 60
SANDBOX_TMP = "/tmp"  # noqa: S108 - a fresh tmpfs inside each sandbox
PUBLIC = "public"
SLIRP_DNS = "10.0.2.3"
NETWORK_TOOLS = ("slirp4netns", "nsenter", "iptables")
DISK_RESERVE_BYTES = 1 << 30  # left free by builds' disks on the disk that holds them
# Destinations a build's public network refuses (IPv4; slirp4netns gives it no IPv6): this host, private,
# shared, link-local (cloud metadata), documentation, benchmarking, multicast and reserved ranges.
REFUSED_NETWORKS = ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
                    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
                    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4")


class SandboxUnavailable(Exception):
    """The machine cannot sandbox builds (str() says what is missing)."""


@dataclass(frozen=True)
class Limits:
    """What one build may use (the HUB_BUILD_* settings, read by the worker from its environment)."""

    memory_bytes: int = 4 << 30
    pids: int = 1024
    cpus: float = 2.0
    disk_bytes: int = 10 << 30
    public_network: bool = False  # RUN steps: no network by default; True: public addresses only (slirp4netns)

    @classmethod
    def from_environment(cls, environ: os._Environ | dict | None = None) -> Limits:
        environ = os.environ if environ is None else environ

        def number(name: str, default: float, scale: int = 1) -> float:
            raw = environ.get(name, "")
            return float(raw) * scale if raw.strip() else default

        network = environ.get("HUB_BUILD_RUN_NETWORK", "").strip().lower() or "none"
        if network not in ("none", "public"):
            raise ValueError(f"HUB_BUILD_RUN_NETWORK is {network!r}: none or public")
        return cls(memory_bytes=int(number("HUB_BUILD_MEMORY_MB", cls.memory_bytes, 1 << 20)),
                   pids=int(number("HUB_BUILD_PIDS", cls.pids)),
                   cpus=number("HUB_BUILD_CPUS", cls.cpus),
                   disk_bytes=int(number("HUB_BUILD_DISK_MB", cls.disk_bytes, 1 << 20)),
                   public_network=network == "public")

    @property
    def run_step_processes(self) -> int:
        """RLIMIT_NPROC of RUN steps: a quarter of the build's pids limit stays for buildah itself.

        The pids cgroup holds the whole build, buildah included: a fork bomb in a RUN step that used
        it all up would leave buildah unable to start a thread, and the build would end there. RUN
        steps and buildah share one uid (root of the build's user namespace), so the RUN steps' fork
        fails first, at this count, while buildah's own (unlimited) rlimit lets it go on to the cgroup's.
        """
        return max(self.pids * 3 // 4, 1)

    def to_environment(self) -> dict[str, str]:
        return {"HUB_BUILD_MEMORY_MB": str(self.memory_bytes >> 20), "HUB_BUILD_PIDS": str(self.pids),
                "HUB_BUILD_CPUS": f"{self.cpus:g}", "HUB_BUILD_DISK_MB": str(self.disk_bytes >> 20),
                "HUB_BUILD_RUN_NETWORK": "public" if self.public_network else "none"}


def describe(limits: Limits | None = None) -> str:
    """One line for people: which sandbox is in force, and its limits."""
    limits = limits or Limits.from_environment()
    return (f"{NAME} sandbox per build step: a user namespace on a uid range of its own, no view of the host's "
            f"files, {'public addresses only' if limits.public_network else 'no network'} for RUN steps, "
            f"seccomp, at most {limits.memory_bytes >> 20} MiB of memory, "
            f"{limits.pids} processes, {limits.cpus:g} CPUs and {limits.disk_bytes >> 20} MiB of disk")


# --- availability and provisioning -------------------------------------------------------------------------


def _cgroup_version() -> int:
    if (CGROUP_ROOT / "pids" / "cgroup.procs").exists() and (CGROUP_ROOT / "memory" / "cgroup.procs").exists():
        return 1
    controllers = CGROUP_ROOT / "cgroup.controllers"
    if controllers.exists() and {"pids", "memory"} <= set(controllers.read_text().split()):
        return 2
    return 0


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _has_range(path: Path, user: str, start: int, count: int) -> bool:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return False
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (user, str(os.geteuid())) and parts[1].isdigit() and parts[2].isdigit() \
                and int(parts[1]) <= start and start + count <= int(parts[1]) + int(parts[2]):
            return True
    return False


def provision(slots: int = DEFAULT_SLOTS) -> None:
    """Reserve the builds' id range in /etc/subuid and /etc/subgid for this user (root), once."""
    user, count = _user_name(), slots * RANGE_SIZE
    for path in (Path("/etc/subuid"), Path("/etc/subgid")):
        with open(path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if not _has_range(path, user, RANGE_START, count):
                handle.seek(0, os.SEEK_END)
                if handle.tell() and not path.read_text().endswith("\n"):
                    handle.write("\n")
                handle.write(f"{user}:{RANGE_START}:{count}\n")


def sandbox_problem(*, slots: int = DEFAULT_SLOTS, provision_ids: bool = True, probe: bool = True) -> str | None:
    """None when builds can be sandboxed on this machine; otherwise what is missing, in words. The build
    worker provisions the id range and probes a real sandbox; the hub's pages only look (`probe=False`)."""
    missing = [tool for tool in ("bwrap", "unshare", "newuidmap", "newgidmap", "mkfs.ext4", "mount", "umount")
               if shutil.which(tool) is None]
    if missing:
        return (f"{', '.join(missing)} not found: install bubblewrap, uidmap, util-linux, mount and e2fsprogs "
                f"(Debian: apt-get install -y bubblewrap uidmap e2fsprogs)")
    if Limits.from_environment().public_network:
        missing = public_network_missing()
        if missing:
            return (f"HUB_BUILD_RUN_NETWORK=public needs {', '.join(missing)} "
                    f"(Debian: apt-get install -y slirp4netns iptables)")
    if os.geteuid() != 0:
        return ("the build worker must run as root: it mounts each build's disk, sets its cgroup limits and maps "
                "its id range, then runs every build step unprivileged")
    if not Path("/dev/loop-control").exists():
        return "no loop devices (/dev/loop-control): each build's disk is a loop-mounted file"
    if filter_program() is None:
        return (f"the builds' seccomp filter is written for x86-64 and this machine is {platform.machine()}: "
                f"builds would run unfiltered, so none run here")
    if _cgroup_version() == 0:
        return "no pids and memory cgroup controllers under /sys/fs/cgroup"
    try:
        if int(Path("/proc/sys/user/max_user_namespaces").read_text()) < 1:
            return "user namespaces are disabled (sysctl user.max_user_namespaces=0)"
    except (OSError, ValueError):
        return "user namespaces are not available"
    if provision_ids:
        try:
            provision(slots)
        except OSError as error:
            return f"cannot reserve the builds' id range in /etc/subuid: {error}"
    if not probe:
        return None
    result = subprocess.run(["unshare", "--user", f"--map-users={RANGE_START},0,{RANGE_SIZE}",
                            f"--map-groups={RANGE_START},0,{RANGE_SIZE}", "--setuid", "0", "--setgid", "0", "--",
                            "bwrap", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
                            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--unshare-pid",
                            "--unshare-net", "--proc", "/proc", "--dev", "/dev", "true"],
                           capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        return f"bubblewrap cannot start a sandbox in a user namespace: {result.stderr.strip()[-300:]}"
    return None


# --- a public network for RUN steps -------------------------------------------------------------------------


def disk_reserve_bytes() -> int:
    """What builds leave free on the disk that holds their workspaces (HUB_BUILD_DISK_RESERVE_MB, 1 GiB)."""
    raw = os.environ.get("HUB_BUILD_DISK_RESERVE_MB", "").strip()
    return int(float(raw) * (1 << 20)) if raw else DISK_RESERVE_BYTES


def check_free_space(folder: Path, disk_bytes: int) -> None:
    """Refuse (SandboxUnavailable, naming the shortfall) a build whose disk would leave less than the
    reserve free where its workspace goes: the host's own data keeps its room."""
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    needed = disk_bytes + disk_reserve_bytes()
    if free < needed:
        raise SandboxUnavailable(
            f"not enough free disk for a build in {folder}: its {disk_bytes >> 20} MiB disk and the "
            f"{disk_reserve_bytes() >> 20} MiB kept free need {needed >> 20} MiB, {free >> 20} MiB are free "
            f"(lower HUB_BUILD_DISK_MB, free some space, or set HUB_BUILD_WORK_DIR to a folder on a larger disk; "
            f"not a tmpfs, where the build's disk would be memory)")


def public_network_missing() -> list[str]:
    """The tools a public network (RUN steps', and every pull from a registry other than the hub) lacks."""
    return [tool for tool in NETWORK_TOOLS if shutil.which(tool) is None]


def _read_child_pid(info_fd: int) -> int:
    """The sandbox's pid, from bwrap's --info-fd JSON."""
    data = b""
    while True:
        chunk = os.read(info_fd, 4096)
        if not chunk:
            raise SandboxUnavailable("the sandbox ended before its network could be set up")
        data += chunk
        with contextlib.suppress(ValueError, KeyError):
            return int(json.loads(data)["child-pid"])


def local_addresses(fib_trie: Path = Path("/proc/net/fib_trie")) -> list[str]:
    """This host's own IPv4 addresses. A public one is this host too: through slirp4netns, a connection to
    it reaches every listener of the host on 0.0.0.0 (the hub, its database) as if from the host itself."""
    found: list[str] = []
    previous = ""
    for line in fib_trie.read_text().splitlines():
        text = line.strip()
        if text.startswith("|--"):
            previous = text[3:].strip()
        elif text == "/32 host LOCAL" and previous and previous not in found:
            found.append(previous)
    return found


def public_network(pid: int) -> tuple[subprocess.Popen, int]:
    """Wire the network namespace of `pid` to the outside with slirp4netns (the host's loopback off), and
    refuse every non-public destination there with iptables, before anything in it runs. Returns slirp4netns
    and the fd that keeps it alive: it exits when that closes, also when this process dies."""
    ready_read, ready_write = os.pipe()
    exit_read, exit_write = os.pipe()
    slirp = subprocess.Popen(["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
                              "--ready-fd", str(ready_write), "--exit-fd", str(exit_read), str(pid), "tap0"],
                             pass_fds=(ready_write, exit_read), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    os.close(ready_write)
    os.close(exit_read)
    try:
        ready = os.read(ready_read, 1)
    finally:
        os.close(ready_read)
    enter = ["nsenter", f"--net=/proc/{pid}/ns/net", "iptables", "-w"]
    rules = [["-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"],
             *[["-A", "OUTPUT", "-d", SLIRP_DNS, "-p", protocol, "--dport", "53", "-j", "ACCEPT"]
               for protocol in ("udp", "tcp")],
             ["-A", "OUTPUT", "-d", ",".join((*REFUSED_NETWORKS, *local_addresses())), "-j", "REJECT"]]
    try:
        if ready != b"1":
            raise SandboxUnavailable("slirp4netns could not give the build its network")
        for rule in rules:
            result = subprocess.run([*enter, *rule], capture_output=True, text=True, timeout=30)
            if result.returncode != 0:
                raise SandboxUnavailable(f"cannot filter the build's network: {result.stderr.strip()[-200:]}")
    except BaseException:
        os.close(exit_write)
        slirp.kill()
        slirp.wait(timeout=10)
        raise
    return slirp, exit_write


# --- one build's sandbox ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    path: Path  # the same path inside as outside, unless `target` is given
    writable: bool = False
    target: Path | None = None  # where it shows inside, when not at `path` (a file over one of ETC_FILES)


class BuildSandbox:
    """The resources of one build: slot (id range), disk, cgroups. `command()` wraps a step's argv."""

    def __init__(self, workspace: Path, *, limits: Limits, slot_dir: Path = SLOT_DIR, slots: int = DEFAULT_SLOTS):
        self.workspace, self.limits, self.slot_dir, self.slots = workspace, limits, slot_dir, slots
        # Slots, cgroups and id ranges are the machine's (SLOT_DIR). Another slot folder (tests that run
        # nothing in the sandbox) gets cgroups of its own, so it never kills a real build's processes.
        self.cgroup_name = CGROUP_NAME if slot_dir == SLOT_DIR else (
            f"{CGROUP_NAME}-{hashlib.sha256(str(slot_dir).encode()).hexdigest()[:12]}")
        self.slot: int | None = None
        self._slot_file = None
        self._mounted = False
        self.cgroups: list[Path] = []
        self.filter = filter_program()

    @property
    def uid_base(self) -> int:
        assert self.slot is not None
        return RANGE_START + self.slot * RANGE_SIZE

    # --- setting up and tearing down ---

    def open(self) -> None:
        self._take_slot()
        self._mount_disk()
        self._make_cgroups()

    def close(self) -> None:
        self.kill_all()
        for cgroup in self.cgroups:
            with contextlib.suppress(OSError):
                cgroup.rmdir()
            if self.cgroup_name != CGROUP_NAME:
                with contextlib.suppress(OSError):
                    cgroup.parent.rmdir()
        if self._mounted:
            subprocess.run(["umount", "-l", str(self.alias)], capture_output=True, timeout=60)
            subprocess.run(["umount", "-l", str(self.workspace)], capture_output=True, timeout=60)
            self._mounted = False
            with contextlib.suppress(OSError):
                (self.workspace.parent / f"{self.workspace.name}.disk").unlink()
        if self._slot_file is not None:
            self._slot_file.truncate(0)
            self._slot_file.close()
            self._slot_file = None

    def _take_slot(self) -> None:
        self.slot_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
        self.slot_dir.chmod(0o711)
        deadline = time.monotonic() + 60
        while True:
            for slot in range(self.slots):
                # 0600: no other user of the machine may open a slot's lock, and hold it to keep builds out.
                fd = os.open(self.slot_dir / f"slot-{slot}.lock",
                             os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                os.fchmod(fd, 0o600)  # also a lock made before this rule
                handle = open(fd, "a+")  # noqa: SIM115 - held for the build
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                self.slot, self._slot_file = slot, handle
                handle.seek(0)
                self._clean_after(handle.read().strip())
                handle.seek(0)
                handle.truncate()
                handle.write(str(self.workspace))
                handle.flush()
                return
            if time.monotonic() > deadline:
                raise SandboxUnavailable(f"all {self.slots} build slots of this machine are busy")
            time.sleep(0.5)

    @classmethod
    def clean_stale_slots(cls, *, slot_dir: Path = SLOT_DIR, slots: int = DEFAULT_SLOTS) -> int:
        """At the worker's start: what builds of a killed worker left (mounts, disk images, workspaces) in
        every slot no running build holds. Returns how many slots had something to clean."""
        cleaned = 0
        for slot in range(slots):
            path = slot_dir / f"slot-{slot}.lock"
            if not path.exists():
                continue
            with open(path, "a+") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a build runs there
                handle.seek(0)
                previous = handle.read().strip()
                if previous:
                    sandbox = cls(Path(previous), limits=Limits(), slot_dir=slot_dir, slots=slots)
                    sandbox.slot = slot
                    sandbox._clean_after(previous)
                    handle.seek(0)
                    handle.truncate()
                    cleaned += 1
        return cleaned

    def _clean_after(self, previous: str) -> None:
        """What a holder of this slot that died (the worker killed) left: its mounts, disk and folder."""
        subprocess.run(["umount", "-l", str(self.alias)], capture_output=True, timeout=60)
        if not previous or not os.path.isabs(previous) or not Path(previous).name.startswith("wharf-build-"):
            return
        workspace = Path(previous)
        if os.path.ismount(workspace):
            subprocess.run(["umount", "-l", str(workspace)], capture_output=True, timeout=60)
        with contextlib.suppress(OSError):
            (workspace.parent / f"{workspace.name}.disk").unlink()
        with contextlib.suppress(OSError):
            workspace.rmdir()

    def _allocate_disk(self, image: Path) -> None:
        """Create the build's disk image, every block of it allocated, if it leaves the reserve free.

        Builds starting at once check and allocate one after the other (a lock of the machine's slots):
        checked together, each would see the same free space, and together they would eat the reserve."""
        self.slot_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
        # 0600: no other user of the machine may open it, and hold it to stop every build from starting.
        lock_fd = os.open(self.slot_dir / "disk.lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.fchmod(lock_fd, 0o600)
        with open(lock_fd, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            check_free_space(image.parent, self.limits.disk_bytes)
            # A new file, never one planted there (the work dir may be /tmp, where the workspace's name shows).
            fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                # Allocated, not sparse: the build has its whole disk, and can never fill the host's instead.
                os.posix_fallocate(fd, 0, self.limits.disk_bytes)
            except OSError as error:
                os.close(fd)
                fd = -1
                image.unlink()
                if error.errno == errno.ENOSPC:
                    raise SandboxUnavailable(f"no room for the build's {self.limits.disk_bytes >> 20} MiB disk in "
                                             f"{image.parent}") from None
                raise
            finally:
                if fd >= 0:
                    os.close(fd)

    def _mount_disk(self) -> None:
        image = self.workspace.parent / f"{self.workspace.name}.disk"
        self._allocate_disk(image)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal",
                        "-E", "root_owner=0:0,lazy_itable_init=1,nodiscard", str(image)],
                       check=True, capture_output=True, timeout=MKFS_TIMEOUT)
        # nodev; not nosuid: setuid programs of an image (sudo after USER) run in RUN steps, where they reach
        # only the user namespace's root, never the host's.
        subprocess.run(["mount", "-o", "loop,nodev", str(image), str(self.workspace)],
                       check=True, capture_output=True, timeout=MKFS_TIMEOUT)
        self._mounted = True
        self.workspace.chmod(0o711)
        (self.slot_dir / "mnt").mkdir(mode=0o711, exist_ok=True)
        (self.slot_dir / "mnt").chmod(0o711)
        self.alias.mkdir(exist_ok=True)
        subprocess.run(["mount", "--bind", str(self.workspace), str(self.alias)], check=True, capture_output=True,
                       timeout=60)
        shutil.rmtree(self.workspace / "lost+found", ignore_errors=True)

    def _make_cgroups(self) -> None:
        version = _cgroup_version()
        name = f"slot-{self.slot}"
        period = 100_000
        quota = max(int(self.limits.cpus * period), 1000)
        if version == 1:
            values = {"pids": {"pids.max": str(self.limits.pids)},
                      "memory": {"memory.limit_in_bytes": str(self.limits.memory_bytes)},
                      "cpu": {"cpu.cfs_period_us": str(period), "cpu.cfs_quota_us": str(quota), "cpu.shares": "256"}}
            for controller, files in values.items():
                parent = CGROUP_ROOT / controller / self.cgroup_name
                if not (CGROUP_ROOT / controller).is_dir():
                    continue
                parent.mkdir(exist_ok=True)
                self._fresh_cgroup(parent / name, files)
                if controller == "memory":
                    with contextlib.suppress(OSError):  # no swap past the limit, where swap accounting exists
                        (parent / name / "memory.memsw.limit_in_bytes").write_text(str(self.limits.memory_bytes))
        else:
            parent = CGROUP_ROOT / self.cgroup_name
            parent.mkdir(exist_ok=True)
            available = set((CGROUP_ROOT / "cgroup.controllers").read_text().split())
            wanted = [c for c in ("pids", "memory", "cpu") if c in available]
            (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
            files = {"pids.max": str(self.limits.pids), "memory.max": str(self.limits.memory_bytes),
                     "memory.swap.max": "0", "cpu.max": f"{quota} {period}", "cpu.weight": "25"}
            self._fresh_cgroup(parent / name, files)

    def _fresh_cgroup(self, path: Path, files: dict[str, str]) -> None:
        path.mkdir(exist_ok=True)
        self.cgroups.append(path)
        self._kill_cgroup(path)  # whatever an earlier holder of this slot left behind
        for file, value in files.items():
            with contextlib.suppress(FileNotFoundError):
                (path / file).write_text(value)

    @staticmethod
    def _kill_cgroup(path: Path) -> None:
        for _ in range(50):
            try:
                pids = [int(pid) for pid in (path / "cgroup.procs").read_text().split()]
            except OSError:
                return
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def kill_all(self) -> None:
        """SIGKILL every process of this build (whatever session or process group it made for itself)."""
        for cgroup in self.cgroups:
            self._kill_cgroup(cgroup)

    # --- wrapping a step ---

    @property
    def alias(self) -> Path:
        """Where the workspace is mounted a second time, under a folder the build's ids may traverse
        (bwrap resolves mount sources as the step's user; HUB_BUILD_WORK_DIR's parents may be closed)."""
        return self.slot_dir / "mnt" / f"slot-{self.slot}"

    def _source(self, path: Path) -> Path:
        if self._mounted and path.is_relative_to(self.workspace):
            return self.alias / path.relative_to(self.workspace)
        return path

    def _filter_pipe(self) -> tuple[int, ...]:
        """A pipe holding the seccomp filter, read once by bwrap (the caller closes it after starting)."""
        if self.filter is None:
            return ()
        read_end, write_end = os.pipe()
        os.write(write_end, self.filter)  # a few hundred bytes: fits the pipe
        os.close(write_end)
        return (read_end,)

    def command(self, argv: list[str], *, mounts: list[Mount], network: bool | str, user_namespace: bool = True,
                chdir: Path | None = None) -> tuple[list[str], tuple[int, ...]]:
        """The argv that runs `argv` in this build's sandbox, and the file descriptors to pass (and close after).

        `network`: True, the host's (trusted steps: fetch, pull, push); False, none but a loopback of its
        own; "public", a network namespace of its own wired to the outside by slirp4netns and allowed
        public addresses only (`started()` does that once the process runs)."""
        fds = self._filter_pipe()
        seccomp_fd = fds[0] if fds else None
        public = network == PUBLIC
        wrapped = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                   "--unshare-cgroup-try", "--hostname", "build"]
        if network is not True:
            wrapped.append("--unshare-net")
        if public:
            info_read, info_write = os.pipe()
            block_read, block_write = os.pipe()
            self._pending_network = (info_read, block_write)
            fds += (info_write, block_read)
            wrapped += ["--info-fd", str(info_write), "--block-fd", str(block_read)]
        if not user_namespace:
            wrapped += ["--cap-drop", "ALL"]
        wrapped += ["--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
                    "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64"]
        for name in ETC_FILES:
            wrapped += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        wrapped += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", SANDBOX_TMP, "--tmpfs", "/sys", "--tmpfs", "/run",
                    "--dir", "/var/tmp"]  # noqa: S108 - the sandbox's own
        if seccomp_fd is not None:
            wrapped += ["--seccomp", str(seccomp_fd)]
        for mount in mounts:
            wrapped += ["--bind" if mount.writable else "--ro-bind", str(self._source(mount.path)),
                        str(mount.target or mount.path)]
        wrapped += ["--remount-ro", "/", "--chdir", str(chdir or SANDBOX_TMP), "--", *argv]
        if user_namespace:
            base = self.uid_base
            wrapped = ["unshare", "--user", f"--map-users={base},0,{RANGE_SIZE}", f"--map-groups={base},0,{RANGE_SIZE}",
                       "--setuid", "0", "--setgid", "0", "--", *wrapped]
        # Join the build's cgroups first (the wrapper shell, then all it starts), with no core dumps.
        joins = "".join(f"echo $$ > {shlex.quote(str(cgroup / 'cgroup.procs'))} && " for cgroup in self.cgroups)
        return ["/bin/sh", "-c", f'{joins}ulimit -c 0 && exec "$@"', "sandbox", *wrapped], fds

    def started(self, process: subprocess.Popen) -> Callable[[], None]:
        """After the step's process started: wire its public network, if it has one (the sandbox waits on
        its block fd until then). Returns what to call when the step is over."""
        pending, self._pending_network = getattr(self, "_pending_network", None), None
        if pending is None:
            return lambda: None
        info_read, block_write = pending
        try:
            slirp, keep_alive = public_network(_read_child_pid(info_read))
            os.write(block_write, b"1")  # the sandbox goes on only now, its network filtered
        finally:
            os.close(info_read)
            os.close(block_write)

        def stop() -> None:
            os.close(keep_alive)
            slirp.kill()
            slirp.wait(timeout=10)

        return stop

    def chown_to_builder(self, path: Path, *, mode: int | None = None) -> None:
        """Hand `path` (recursively, never following symlinks) to the build's root (uid 0 inside)."""
        base = self.uid_base
        for root, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                os.lchown(os.path.join(root, name), base, base)
        os.lchown(path, base, base)
        if mode is not None:
            path.chmod(mode)
