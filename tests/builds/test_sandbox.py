"""The build sandbox's parts on their own: the context's symlink check, the base images a Dockerfile
pulls, the seccomp filter under a real bwrap, and the second wall: with the symlink check switched off,
real buildah in the real sandbox still cannot reach a host directory through a `--mount` source."""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

import pytest

from builds import constants, runner
from builds.context_check import ContextRefused, base_images, check_context, escaping_symlinks
from builds.executor import BuildJob
from builds.runner import LocalRunner
from builds.sandbox import BuildSandbox, Limits, SandboxUnavailable, sandbox_problem
from builds.seccomp import filter_program

needs_sandbox = pytest.mark.skipif(shutil.which("bwrap") is None or shutil.which("buildah") is None,
                                   reason="bubblewrap and buildah are needed")


def tree(root: Path, links: dict[str, str]) -> Path:
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "file").write_text("x")
    for name, target in links.items():
        (root / name).symlink_to(target)
    return root


def test_symlinks_inside_the_context_are_accepted(tmp_path):
    context = tree(tmp_path, {"a": "file", "sub/b": "../file", "sub/deep/c": "../../sub", "d": "sub/deep/c/deep"})
    assert escaping_symlinks(context) == []
    check_context(context)


@pytest.mark.parametrize("links", [
    {"keys": "/srv/wharf/data/keys"},  # absolute
    {"up": "../"},  # one level past the root
    {"sub/deep/up": "../../../etc"},
    {"here": ".", "sub/esc": "../here/.."},  # through another link that alone stays inside
    {"loop1": "loop2", "loop2": "loop1"},  # a loop resolves nowhere: refused
])
def test_symlinks_leaving_the_context_are_refused(tmp_path, links):
    context = tree(tmp_path, links)
    assert escaping_symlinks(context)
    with pytest.raises(ContextRefused, match="point outside"):
        check_context(context)


def test_base_images_follow_args_stages_and_copy_from():
    dockerfile = """
# syntax comment
ARG BASE=debian:12
ARG TAG
FROM --platform=linux/amd64 ${BASE} AS build
RUN --mount=type=cache,target=/c --mount=type=bind,from=tools:1,source=/x,target=/y true
FROM hub.example/app/runtime:${TAG:-latest}
COPY --from=build /out /out
COPY --from=0 /a /a
COPY --chown=1:1 --from=docker.io/library/busybox:1 /bin/busybox /bin/
FROM scratch
"""
    assert base_images(dockerfile, {"TAG": "v2"}) == [
        "debian:12", "tools:1", "hub.example/app/runtime:v2", "docker.io/library/busybox:1"]
    assert base_images("ARG IMAGE\nFROM ${IMAGE}\n", {"IMAGE": "alpine:3"}) == ["alpine:3"]
    assert base_images("FROM ${UNDECLARED}\n", {"UNDECLARED": "alpine:3"}) == []  # as buildah: empty


def test_limits_come_from_the_environment():
    limits = Limits.from_environment({"HUB_BUILD_MEMORY_MB": "512", "HUB_BUILD_PIDS": "64", "HUB_BUILD_CPUS": "0.5",
                                      "HUB_BUILD_DISK_MB": "100"})
    assert limits == Limits(memory_bytes=512 << 20, pids=64, cpus=0.5, disk_bytes=100 << 20)
    assert Limits.from_environment(limits.to_environment()) == limits
    assert Limits.from_environment({}) == Limits()
    assert Limits.from_environment({"HUB_BUILD_RUN_NETWORK": "public"}).public_network is True
    with pytest.raises(ValueError, match="none or public"):
        Limits.from_environment({"HUB_BUILD_RUN_NETWORK": "everything"})


@needs_sandbox
def test_the_seccomp_filter_refuses_user_namespaces_and_allows_the_rest(tmp_path):
    program = filter_program()
    assert program is not None
    (tmp_path / "filter").write_bytes(program)
    with open(tmp_path / "filter", "rb") as handle:
        result = subprocess.run(
            ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-pid", "--proc", "/proc",
             "--seccomp", str(handle.fileno()), "sh", "-c",
             "unshare -U true; echo userns=$?; unshare -m true; echo mountns=$?; ls / >/dev/null; echo ls=$?"],
            pass_fds=(handle.fileno(),), capture_output=True, text=True, timeout=30)
    assert "userns=1" in result.stdout and "mountns=0" in result.stdout and "ls=0" in result.stdout, result
    assert "Operation not permitted" in result.stderr


class Reporter:
    def __init__(self):
        self.lines, self.states = [], []

    def log(self, line):
        self.lines.append(line)

    def state(self, state):
        self.states.append(state)

    def cancelled(self):
        return False


@needs_sandbox
def test_the_sandbox_hides_the_host_even_from_a_symlink_buildah_follows(tmp_path, monkeypatch):
    """The symlink check off: buildah 1.28 follows `keys -> <host dir>` as a --mount source on the host
    it sees, and in the sandbox that host holds no such directory."""
    problem = sandbox_problem()
    assert problem is None, problem
    secret_dir = tmp_path / "host-keys"
    secret_dir.mkdir()
    secret = f"host-secret-{uuid.uuid4().hex}"
    (secret_dir / "secret_key").write_text(secret)
    source = tmp_path / "src"
    subprocess.run(["git", "init", "-q", "-b", "main", str(source)], check=True)
    shutil.copy("/bin/busybox", source / "busybox")
    (source / "keys").symlink_to(secret_dir)
    (source / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        'RUN --mount=type=bind,source=keys,target=/k ["/bin/busybox", "cat", "/k/secret_key"]\n')
    git = ["git", "-C", str(source), "-c", "user.name=t", "-c", "user.email=t@e"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "link"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    monkeypatch.setattr(runner, "check_context", lambda context: None)
    job = BuildJob(build_id=99, source_url=str(source), is_local=True, commit=commit, ref="refs/heads/main",
                   message="m", dockerfile="Dockerfile", context=".", build_args={}, secrets={},
                   registry="127.0.0.1:9", public_host="hub.example:443", repository="eve/app", tag="latest",
                   username="eve", password="whf_pat_unused", timeout=120)
    reporter = Reporter()
    outcome = LocalRunner(work_root=tmp_path / "work", limits=Limits(disk_bytes=200 << 20)).execute(
        job, reporter, lambda digest, commit: ("unused", "unused"))
    log = "\n".join(reporter.lines)
    assert outcome.state == constants.FAILED and "buildah bud exited" in outcome.error, log
    assert secret not in log
    assert "RUN --mount=type=bind,source=keys" in log  # buildah got as far as the step
    assert list((tmp_path / "work").iterdir()) == []


@pytest.mark.django_db
def test_the_builds_tab_says_which_sandbox_is_in_force(client, build_settings, repository, alice):
    client.force_login(alice)
    page = client.get(f"/r/{repository.namespace.name}/{repository.name}/builds")
    assert page.status_code == 200
    assert "bubblewrap sandbox" in page.content.decode() and "no network for RUN steps" in page.content.decode()


def test_flags_are_never_taken_for_images():
    assert base_images("FROM --platform=linux/arm64 --authfile=/etc/shadow alpine:3\n", {}) == ["alpine:3"]
    assert base_images("FROM --authfile=/etc/shadow\n", {}) == []


def test_a_worker_that_cannot_sandbox_refuses_the_build(tmp_path, source, monkeypatch):
    repo, commit = source
    monkeypatch.setattr(runner, "confinement_problem", lambda: "no loop devices (/dev/loop-control)")
    reporter = Reporter()
    job = BuildJob(build_id=5, source_url=str(repo), is_local=True, commit=commit, ref="refs/heads/main",
                   message="m", dockerfile="Dockerfile", context=".", build_args={}, secrets={},
                   registry="127.0.0.1:9", public_host="hub.example:443", repository="eve/app", tag="latest",
                   username="eve", password="whf_pat_unused", timeout=60)
    outcome = LocalRunner(work_root=tmp_path / "work").execute(job, reporter, None)
    assert outcome.state == constants.FAILED and "cannot sandbox builds" in outcome.error
    assert "no loop devices" in outcome.error and reporter.states == []


@needs_sandbox
def test_a_slot_left_by_a_killed_worker_is_cleaned_when_taken_again(tmp_path):
    assert sandbox_problem() is None
    slot_dir = tmp_path / "slots"
    first = BuildSandbox(Path(tempfile.mkdtemp(prefix="wharf-build-1-", dir=tmp_path)), limits=Limits(
        disk_bytes=64 << 20), slot_dir=slot_dir, slots=1)
    first.open()
    assert os.path.ismount(first.workspace)
    first._slot_file.close()  # the worker died: its lock is gone, its mount and disk are not
    second = BuildSandbox(Path(tempfile.mkdtemp(prefix="wharf-build-2-", dir=tmp_path)), limits=Limits(
        disk_bytes=64 << 20), slot_dir=slot_dir, slots=1)
    second.open()
    try:
        assert second.slot == 0 and not first.workspace.exists()
        assert not (tmp_path / f"{first.workspace.name}.disk").exists()
        assert second.cgroups and all("wharf-builds-" in str(cgroup) for cgroup in second.cgroups)  # not a real slot's
    finally:
        second.close()
    assert not os.path.ismount(second.workspace)


@needs_sandbox
def test_a_file_planted_where_the_disk_image_goes_is_never_used(tmp_path):
    """The workspace's disk image is a sibling of the workspace (in /tmp by default, where anyone can see the
    workspace's name appear): a file or symlink planted there first must not become the build's disk."""
    assert sandbox_problem() is None
    workspace = Path(tempfile.mkdtemp(prefix="wharf-build-3-", dir=tmp_path))
    planted = tmp_path / f"{workspace.name}.disk"
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    planted.symlink_to(victim)
    sandbox = BuildSandbox(workspace, limits=Limits(disk_bytes=64 << 20), slot_dir=tmp_path / "slots", slots=1)
    try:
        with pytest.raises(FileExistsError):
            sandbox.open()
    finally:
        sandbox.close()
    assert victim.read_text() == "keep me" and not os.path.ismount(workspace)


@needs_sandbox
def test_the_workspace_disk_is_mounted_without_devices(tmp_path):
    assert sandbox_problem() is None
    workspace = Path(tempfile.mkdtemp(prefix="wharf-build-4-", dir=tmp_path))
    sandbox = BuildSandbox(workspace, limits=Limits(disk_bytes=64 << 20), slot_dir=tmp_path / "slots", slots=1)
    sandbox.open()
    try:
        options = [line.split()[5].split(",") for line in Path("/proc/self/mountinfo").read_text().splitlines()
                   if line.split()[4] in (str(workspace), str(sandbox.alias))]
        assert len(options) == 2 and all("nodev" in mount_options for mount_options in options)
    finally:
        sandbox.close()


def host_addresses() -> list[str]:
    listed = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True)
    return [line.split()[3].split("/")[0] for line in listed.stdout.splitlines() if len(line.split()) > 3]


@pytest.fixture
def public_host_address():
    """A public address of this host, as many hosts have one (added to lo for the test, then removed)."""
    address = "203.0.114.7/32"
    subprocess.run(["ip", "addr", "add", address, "dev", "lo"], check=True)
    try:
        yield address.split("/")[0]
    finally:
        subprocess.run(["ip", "addr", "del", address, "dev", "lo"], check=True)


@needs_sandbox
@pytest.mark.skipif(shutil.which("slirp4netns") is None or shutil.which("iptables") is None,
                    reason="slirp4netns and iptables are needed")
def test_a_public_network_refuses_the_host_and_private_addresses(tmp_path, source, public_host_address):
    """HUB_BUILD_RUN_NETWORK=public: RUN steps get an interface of their own (slirp4netns), and a
    listener on every address of this host is out of their reach, through the host's loopback
    (10.0.2.2), its own 127.0.0.1, or this host's private addresses."""
    assert sandbox_problem() is None
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))  # the point: reachable on every address of the host
    listener.listen(16)
    port = listener.getsockname()[1]
    accepted = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, peer = listener.accept()
                accepted.append(peer)
                connection.close()

    threading.Thread(target=accept, daemon=True).start()
    targets = ["10.0.2.2", "127.0.0.1", *host_addresses()]
    assert public_host_address in targets
    probes = "; ".join(f"busybox nc -w 3 {address} {port} </dev/null && echo OPEN$((6*7)){address}"
                       for address in targets)
    repo, _ = source
    shutil.copy("/bin/busybox", repo / "busybox")
    (repo / "Dockerfile").write_text("FROM scratch\nCOPY busybox /bin/busybox\n"
                                     f'RUN ["/bin/busybox", "sh", "-c", "busybox ip -4 addr; {probes}; echo probed"]\n')
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@e"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "net"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    job = BuildJob(build_id=98, source_url=str(repo), is_local=True, commit=commit, ref="refs/heads/main",
                   message="m", dockerfile="Dockerfile", context=".", build_args={}, secrets={},
                   registry="127.0.0.1:9", public_host="hub.example:443", repository="eve/app", tag="latest",
                   username="eve", password="whf_pat_unused", timeout=120)
    reporter = Reporter()
    try:
        LocalRunner(work_root=tmp_path / "work", limits=Limits(disk_bytes=200 << 20, public_network=True)).execute(
            job, reporter, lambda digest, commit: ("unused", "unused"))
    finally:
        listener.close()
    log = "\n".join(reporter.lines)
    assert "inet 10.0.2.100/24" in log and "probed" in log, log  # the step had a network, and ran every probe
    assert "OPEN42" not in log and accepted == [], log


@needs_sandbox
def test_a_killed_workers_leftovers_are_cleaned_at_start_but_a_running_build_is_kept(tmp_path):
    assert sandbox_problem() is None
    slot_dir = tmp_path / "slots"
    running = BuildSandbox(Path(tempfile.mkdtemp(prefix="wharf-build-6-", dir=tmp_path)), limits=Limits(
        disk_bytes=64 << 20), slot_dir=slot_dir, slots=2)
    running.open()
    dead = BuildSandbox(Path(tempfile.mkdtemp(prefix="wharf-build-5-", dir=tmp_path)), limits=Limits(
        disk_bytes=64 << 20), slot_dir=slot_dir, slots=2)
    dead.open()
    dead._slot_file.close()  # the worker died: its lock is gone, its mount and disk are not
    try:
        assert (running.slot, dead.slot) == (0, 1)
        assert BuildSandbox.clean_stale_slots(slot_dir=slot_dir, slots=2) == 1
        assert not dead.workspace.exists() and not (tmp_path / f"{dead.workspace.name}.disk").exists()
        assert os.path.ismount(running.workspace) and (tmp_path / f"{running.workspace.name}.disk").exists()
        assert BuildSandbox.clean_stale_slots(slot_dir=slot_dir, slots=2) == 0  # nothing left to clean
    finally:
        running.close()


@needs_sandbox
def test_the_workspace_disk_is_allocated_not_sparse(tmp_path):
    assert sandbox_problem() is None
    workspace = Path(tempfile.mkdtemp(prefix="wharf-build-7-", dir=tmp_path))
    sandbox = BuildSandbox(workspace, limits=Limits(disk_bytes=64 << 20), slot_dir=tmp_path / "slots", slots=1)
    sandbox.open()
    try:
        image = tmp_path / f"{workspace.name}.disk"
        assert image.stat().st_blocks * 512 >= 64 << 20  # every block is the build's, mkfs did not punch holes
    finally:
        sandbox.close()


def test_a_build_that_would_leave_the_host_short_of_disk_is_refused(tmp_path, monkeypatch):
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    monkeypatch.setenv("HUB_BUILD_DISK_RESERVE_MB", str((free >> 20) + 1))  # the reserve alone does not fit
    sandbox = BuildSandbox(Path(tempfile.mkdtemp(prefix="wharf-build-8-", dir=tmp_path)),
                           limits=Limits(disk_bytes=64 << 20), slot_dir=tmp_path / "slots", slots=1)
    with pytest.raises(SandboxUnavailable, match=r"not enough free disk for a build in .*need .* MiB are free"):
        sandbox._mount_disk()
    assert not list(tmp_path.glob("*.disk"))


def test_off_x86_64_the_worker_refuses_builds_rather_than_run_them_unfiltered(monkeypatch):
    import platform

    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert filter_program() is None
    problem = sandbox_problem(provision_ids=False, probe=False)
    if os.geteuid() == 0 and Path("/dev/loop-control").exists() and shutil.which("bwrap"):
        assert problem is not None and "seccomp filter is written for x86-64" in problem and "aarch64" in problem
    else:
        assert problem is not None  # refused earlier, for what this machine lacks first


@needs_sandbox
@pytest.mark.skipif(shutil.which("slirp4netns") is None or shutil.which("iptables") is None,
                    reason="slirp4netns and iptables are needed")
def test_a_public_registry_is_pulled_from_a_network_that_cannot_reach_the_host(tmp_path, source,
                                                                             public_host_address):
    """A registry that passes the name check (a public address) but is this host: the pull step's own
    network namespace refuses it, so a DNS answer or a redirect to the host fails the same way."""
    assert sandbox_problem() is None
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    accepted = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, peer = listener.accept()
                accepted.append(peer)
                connection.close()

    threading.Thread(target=accept, daemon=True).start()
    repo, _ = source
    image = f"{public_host_address}:{port}/eve/base:1"
    (repo / "Dockerfile").write_text(f"FROM {image}\nRUN true\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@e"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "pull"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    job = BuildJob(build_id=97, source_url=str(repo), is_local=True, commit=commit, ref="refs/heads/main",
                   message="m", dockerfile="Dockerfile", context=".", build_args={}, secrets={},
                   registry="127.0.0.1:9", public_host="hub.example:443", repository="eve/app", tag="latest",
                   username="eve", password="whf_pat_unused", timeout=120)
    reporter = Reporter()
    try:
        outcome = LocalRunner(work_root=tmp_path / "work", limits=Limits(disk_bytes=200 << 20)).execute(
            job, reporter, lambda digest, commit: ("unused", "unused"))
    finally:
        listener.close()
    log = "\n".join(reporter.lines)
    assert f"pulling {image} (public addresses only)" in log, log
    assert outcome.state == constants.FAILED and f"buildah pull {image}" in outcome.error, log
    assert accepted == [], log
