"""ssh sources against a real OpenSSH server on loopback: the runner fetches with the repository's deploy key.

The server (`/usr/sbin/sshd -D -e`) has its own host key and config, listens on a free loopback port,
and lets in only the deploy key written to its AuthorizedKeysFile; it serves a bare Git repository
this test makes, as the current Unix user. `LocalRunner.execute` runs the job for real; the recording
reporter stops it once the commit is checked out (the build step is the same for every source kind
and is covered by tests/e2e/test_builds.py), so buildah is never reached.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from builds import constants
from builds.executor import BuildJob
from builds.runner import LocalRunner
from builds.sandbox import RANGE_START
from builds.services import build_source_link
from tests.factories import RepositoryFactory
from tests.live import free_port, wait_until

SSHD = "/usr/sbin/sshd"
pytestmark = [pytest.mark.django_db,
              pytest.mark.skipif(not Path(SSHD).exists(), reason="openssh-server is not installed")]


class RecordingReporter:
    """Keeps every line and state; asks the runner to stop once the fetch is done (state `building`)."""

    def __init__(self):
        self.lines: list[str] = []
        self.states: list[str] = []
        self.work: Path | None = None
        self.fetched_by: set[int] = set()

    def log(self, line: str) -> None:
        self.lines.append(line)

    def state(self, state: str) -> None:
        self.states.append(state)
        if state == constants.BUILDING and self.work is not None:  # the fetch is over; who wrote the checkout?
            self.fetched_by = {path.stat().st_uid for path in self.work.glob("*/src/.git/*")}

    def cancelled(self) -> bool:
        return constants.BUILDING in self.states

    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class SshServer:
    port: int
    user: str
    repo: Path
    commits: list[str]  # oldest first; main is at the last
    host_public_key: str  # "ssh-ed25519 AAAA…"
    log_path: Path

    def url(self, host: str = "localhost") -> str:
        return f"ssh://{self.user}@{host}:{self.port}{self.repo}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=Wharf Test", "-c", "user.email=t@example.com", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


def bare_repository(root: Path) -> tuple[Path, list[str]]:
    """A bare repository with two commits on main (a Dockerfile, then a change to it)."""
    work = root / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    commits = []
    for step in ("one", "two"):
        (work / "Dockerfile").write_text(f"FROM scratch\nCOPY {step}.txt /\n")
        (work / f"{step}.txt").write_text(step)
        git("add", ".", cwd=work)
        git("commit", "-q", "-m", step, cwd=work)
        commits.append(git("rev-parse", "HEAD", cwd=work))
    bare = root / "app.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return bare, commits


@pytest.fixture
def deploy_key():
    """(public, private) deploy key that linking an ssh source to a repository generates."""
    source, _ = build_source_link(repository=RepositoryFactory(), url="ssh://git@git.example.com/team/app.git")
    assert source.deploy_public_key.startswith("ssh-ed25519 ") and "OPENSSH PRIVATE KEY" in source.deploy_private_key
    return source.deploy_public_key, source.deploy_private_key


@pytest.fixture
def sshd(tmp_path, deploy_key):
    """A real sshd on a free loopback port; its AuthorizedKeysFile holds only the deploy key's public part."""
    root = tmp_path / "sshd"
    root.mkdir()
    host_public_key = keygen(root / "host_key")
    (root / "authorized_keys").write_text(deploy_key[0] + "\n")
    repo, commits = bare_repository(tmp_path / "git")
    port, user = free_port(), getpass.getuser()
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\nPidFile {root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nAllowUsers {user}\n"
        # tmp_path sits under the world-writable /tmp, which StrictModes would refuse.
        "StrictModes no\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
        # Offered, so a client that could prompt would: the runner's ssh must not (BatchMode).
        "PasswordAuthentication yes\nKbdInteractiveAuthentication yes\nUsePAM no\n"
        # As Git hosts do, so git speaks protocol v2 (and can fetch a commit that is not a branch tip).
        "AcceptEnv GIT_PROTOCOL\nLogLevel VERBOSE\n")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory, as root
    subprocess.run([SSHD, "-t", "-f", str(root / "sshd_config")], check=True)
    log_path = root / "sshd.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")], stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = SshServer(port=port, user=user, repo=repo, commits=commits, host_public_key=host_public_key,
                       log_path=log_path)

    def listening() -> bool:  # from its log, so that no probe connection shows up in it
        assert process.poll() is None, server.log()
        return f"Server listening on 127.0.0.1 port {port}." in server.log()

    try:
        wait_until(listening, timeout=10, message="sshd to listen")
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def ssh_job(url: str, private_key: str, commit: str, **overrides) -> BuildJob:
    values = {"build_id": 7, "source_url": url, "is_local": False, "commit": commit, "ref": "refs/heads/main",
              "message": "", "dockerfile": "Dockerfile", "context": ".", "build_args": {}, "secrets": {},
              "registry": "127.0.0.1:1", "public_host": "hub.example:443", "repository": "alice/app",
              "tag": "latest", "username": "alice", "password": "whf_pat_unused", "timeout": 60,
              "ssh_private_key": private_key, "allowed_networks": ("127.0.0.0/8",)}
    return BuildJob(**{**values, **overrides})


def run(job: BuildJob, tmp_path: Path, **runner_options) -> tuple:
    reporter = RecordingReporter()
    work = tmp_path / "work root"  # a space: the key and known_hosts paths must reach ssh quoted
    reporter.work = work
    # buildah is never reached (the reporter stops the build after the fetch); `true` stands in for it.
    outcome = LocalRunner(work_root=work, buildah=shutil.which("true"), **runner_options).execute(
        job, reporter, lambda digest, commit: ("unused", "unused"))
    assert list(work.iterdir()) == []  # the workspace, deploy key included, is gone
    return outcome, reporter


def test_the_deploy_key_fetches_exactly_the_commit(sshd, deploy_key, tmp_path):
    older = sshd.commits[0]  # not the branch tip: the runner must fetch this commit, not whatever main is now
    outcome, reporter = run(ssh_job(sshd.url(), deploy_key[1], older), tmp_path)
    assert outcome.state == constants.CANCELLED and outcome.error == "build cancelled", reporter.text()
    assert outcome.commit == older
    assert reporter.states == [constants.CLONING, constants.BUILDING]
    assert f"checked out {older}" in reporter.lines
    assert "localhost resolves to 127.0.0.1: fetching from that address only" in reporter.lines
    assert f"Accepted publickey for {sshd.user}" in sshd.log()


def test_a_remote_source_is_fetched_as_the_builds_own_uid_not_the_workers(sshd, deploy_key, tmp_path):
    outcome, reporter = run(ssh_job(sshd.url(), deploy_key[1], sshd.commits[-1]), tmp_path)
    assert outcome.commit == sshd.commits[-1], reporter.text()
    # git ran in the build's user namespace: what it wrote belongs to the build's id range on the host.
    assert reporter.fetched_by and all(uid >= RANGE_START for uid in reporter.fetched_by), reporter.fetched_by


def test_the_head_of_the_branch_when_no_commit_is_given(sshd, deploy_key, tmp_path):
    outcome, reporter = run(ssh_job(sshd.url(), deploy_key[1], ""), tmp_path)
    assert outcome.commit == sshd.commits[-1], reporter.text()


def test_another_key_is_refused_quickly_and_says_so(sshd, tmp_path):
    keygen(tmp_path / "other")
    other_private = (tmp_path / "other").read_text()
    started = time.monotonic()
    outcome, reporter = run(ssh_job(sshd.url(), other_private, sshd.commits[-1]), tmp_path)
    assert time.monotonic() - started < 20  # no password prompt to hang on: BatchMode
    assert outcome.state == constants.FAILED, reporter.text()
    assert outcome.error.startswith("git fetch exited with status 128: the server refused the deploy key")
    assert any("Permission denied (publickey" in line for line in reporter.lines)
    assert reporter.lines[-1] == f"build failed: {outcome.error}"
    assert reporter.states == [constants.CLONING]
    assert "Accepted" not in sshd.log() and "Failed publickey" in sshd.log()


def test_an_unknown_host_key_is_trusted_on_first_use_and_logged(sshd, deploy_key, tmp_path):
    outcome, reporter = run(ssh_job(sshd.url(), deploy_key[1], sshd.commits[-1]), tmp_path)
    assert outcome.commit == sshd.commits[-1], reporter.text()
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "sshd" / "host_key.pub")], check=True,
                                 capture_output=True, text=True).stdout.split()[1]
    # Listed as ssh lists a host off port 22, under the URL's name (not the pinned address).
    assert any(line.startswith(f"ssh host key of [localhost]:{sshd.port} trusted on first use: "
                               f"ssh-ed25519 {fingerprint} ") for line in reporter.lines), reporter.text()


def test_a_pinned_host_key_is_checked(sshd, deploy_key, tmp_path):
    pinned = tmp_path / "known_hosts"
    pinned.write_text(f"[localhost]:{sshd.port} {sshd.host_public_key}\n")
    outcome, reporter = run(ssh_job(sshd.url(), deploy_key[1], sshd.commits[-1]), tmp_path, ssh_known_hosts=pinned)
    assert outcome.commit == sshd.commits[-1], reporter.text()
    assert f"ssh host key matched the one pinned in {pinned}" in reporter.lines
    assert not any("trusted on first use" in line for line in reporter.lines)


def test_a_host_key_other_than_the_pinned_one_is_refused(sshd, deploy_key, tmp_path):
    pinned = tmp_path / "known_hosts"
    pinned.write_text(f"[localhost]:{sshd.port} {keygen(tmp_path / 'impostor')}\n")
    outcome, reporter = run(ssh_job(sshd.url(), deploy_key[1], sshd.commits[-1]), tmp_path, ssh_known_hosts=pinned)
    assert outcome.state == constants.FAILED, reporter.text()
    assert outcome.error == ("git fetch exited with status 128: the server's ssh host key is not the one pinned "
                             "for it on the build workers")
    assert any("Host key verification failed" in line for line in reporter.lines)
    assert "Accepted" not in sshd.log()  # the deploy key was never offered


def test_a_loopback_ssh_source_is_refused_unless_allowed(sshd, deploy_key, tmp_path):
    outcome, reporter = run(ssh_job(sshd.url(), deploy_key[1], sshd.commits[-1], allowed_networks=()), tmp_path)
    assert outcome.state == constants.FAILED
    assert outcome.error.startswith("refused to fetch from localhost: ") and "loopback" in outcome.error
    assert not any(line.startswith("fetching") for line in reporter.lines)
    assert "Connection from" not in sshd.log()
