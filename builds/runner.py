"""Run one build on this machine: fetch the commit, `buildah bud`, push, sign.

A plain class (no Celery, no database): the task gives it a `BuildJob`, a `Reporter` and a signer.
Every child process runs in its own process group; cancel (polled through the reporter) and the
timeout kill the whole group. The workspace (checkout, secrets, auth file, buildah storage) is removed
whatever happens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import re
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from builds import constants
from builds.executor import BuildJob, BuildOutcome, Reporter, Signer
from builds.source_safety import (
    PinnedHost,
    SourceRefused,
    check_remote_source,
    git_pin_options,
    parse_networks,
    ssh_pin_options,
)

POLL_SECONDS = 0.5
KILL_GRACE_SECONDS = 3.0
FULL_SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
SAFE_ENV = ("PATH", "LANG", "LC_ALL")
SSH_CONNECT_SECONDS = 30
SSH_FAILURE_HINTS = (
    ("Permission denied (publickey", "the server refused the deploy key: add the public key shown on the "
                                     "repository's Builds tab to the Git repository (read access is enough)"),
    ("Host key verification failed", "the server's ssh host key is not the one pinned for it on the build workers"),
    ("Connection refused", "nothing accepts ssh connections at that host and port"),
    ("Connection timed out", "the ssh server did not answer"),
)


class BuildStopped(Exception):
    """Cancelled or timed out: `state` says which."""

    def __init__(self, state: str, message: str):
        super().__init__(message)
        self.state = state


class BuildFailed(Exception):
    pass


def _remove_tree(path: Path) -> None:
    def make_writable(function, name, _exc_info) -> None:
        try:
            os.chmod(name, stat.S_IRWXU)
            parent = os.path.dirname(name)
            os.chmod(parent, os.stat(parent).st_mode | stat.S_IRWXU)
            function(name)
        except OSError:
            pass

    shutil.rmtree(path, onerror=make_writable)


def inside(root: Path, relative: str) -> Path:
    """`root/relative`, refusing absolute paths and anything that resolves outside `root`."""
    if os.path.isabs(relative):
        raise BuildFailed(f"{relative!r} must be relative to the repository root")
    candidate = (root / relative).resolve()
    if candidate != root.resolve() and root.resolve() not in candidate.parents:
        raise BuildFailed(f"{relative!r} points outside the repository")
    return candidate


def ssh_fingerprint(blob: str) -> str:
    """OpenSSH's SHA256 fingerprint of a base64 public key blob (as `ssh-keygen -l` prints it)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(blob)).digest()).decode().rstrip("=")


class _Tail:
    """A reporter passed through, remembering the lines logged (to explain a failed ssh fetch)."""

    def __init__(self, reporter: Reporter):
        self.reporter, self.lines = reporter, []

    def log(self, line: str) -> None:
        self.lines.append(line)
        self.reporter.log(line)

    def state(self, state: str) -> None:
        self.reporter.state(state)

    def cancelled(self) -> bool:
        return self.reporter.cancelled()


class LocalRunner:
    """The local executor: git and buildah on this machine, as this Unix user."""

    def __init__(self, *, work_root: str | Path | None = None, buildah: str = "buildah", git: str = "git",
                 ssh_known_hosts: str | Path | None = None):
        self.work_root = Path(work_root) if work_root else None
        self.buildah = buildah
        self.git = git
        # Host keys of ssh sources that must match (OpenSSH's GlobalKnownHostsFile); None: ssh's default.
        self.ssh_known_hosts = str(ssh_known_hosts) if ssh_known_hosts else None

    # --- the public entry point --------------------------------------------------------------

    def execute(self, job: BuildJob, reporter: Reporter, sign: Signer) -> BuildOutcome:
        self.job, self.reporter = job, reporter
        self.deadline = time.monotonic() + job.timeout
        self.masks = tuple(s for s in (job.password, *job.secrets.values(), *job.extra_masks) if s)
        missing = [tool for tool in (self.git, self.buildah) if shutil.which(tool) is None]
        if missing:
            message = (f"{', '.join(missing)} not found on the build worker: install it "
                       f"(Debian: apt-get install -y git buildah) and restart the worker")
            reporter.log(message)
            return BuildOutcome(constants.FAILED, error=message)
        if self.work_root:
            self.work_root.mkdir(parents=True, exist_ok=True)
        workspace = Path(tempfile.mkdtemp(prefix=f"wharf-build-{job.build_id}-", dir=self.work_root))
        commit = job.commit
        try:
            self._prepare(workspace)
            reporter.state(constants.CLONING)
            commit = self._fetch(workspace)
            reporter.state(constants.BUILDING)
            self._build(workspace, commit)
            reporter.state(constants.PUSHING)
            digest = self._push(workspace)
            reporter.state(constants.SIGNING)
            self._check_stop()
            tag, signature_digest = sign(digest, commit)
            reporter.log(f"signed {digest}: {job.public_host}/{job.repository}:{tag} ({signature_digest})")
            return BuildOutcome(constants.SUCCESS, digest=digest, commit=commit, signature_tag=tag)
        except BuildStopped as stopped:
            reporter.log(str(stopped))
            return BuildOutcome(stopped.state, commit=commit, error=str(stopped))
        except BuildFailed as failed:
            reporter.log(f"build failed: {self._mask(str(failed))}")
            return BuildOutcome(constants.FAILED, commit=commit, error=self._mask(str(failed)))
        except Exception as error:  # noqa: BLE001 - a build ends with a state, whatever went wrong
            message = self._mask(f"{type(error).__name__}: {error}")
            reporter.log(f"build failed: {message}")
            return BuildOutcome(constants.FAILED, commit=commit, error=message)
        finally:
            _remove_tree(workspace)

    # --- steps ------------------------------------------------------------------------------

    def _prepare(self, ws: Path) -> None:
        job = self.job
        for name in ("home", "tmp", "root", "runroot", "secrets", "src"):
            (ws / name).mkdir(mode=0o700)
        registries = [job.registry] + ([job.public_host] if job.public_host != job.registry else [])
        (ws / "registries.conf").write_text(
            'unqualified-search-registries = ["docker.io"]\nshort-name-mode = "permissive"\n\n'
            + "".join(f'[[registry]]\nlocation = "{host}"\ninsecure = true\n\n' for host in registries))
        (ws / "containers.conf").write_text(
            "[containers]\n"
            'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n\n'
            '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
            f'events_logfile_path = "{ws / "tmp" / "events.log"}"\n')
        auth = base64.b64encode(f"{job.username}:{job.password}".encode()).decode()
        auth_file = ws / "auth.json"
        auth_file.touch(mode=0o600)
        auth_file.write_text(json.dumps({"auths": {host: {"auth": auth} for host in registries}}))
        self.env = {name: os.environ[name] for name in SAFE_ENV if name in os.environ}
        self.env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        self.env.update({
            "HOME": str(ws / "home"), "TMPDIR": str(ws / "tmp"), "XDG_RUNTIME_DIR": str(ws / "tmp"),
            "CONTAINERS_REGISTRIES_CONF": str(ws / "registries.conf"),
            "CONTAINERS_CONF": str(ws / "containers.conf"),
            "REGISTRY_AUTH_FILE": str(auth_file), "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot",
            "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
        })
        if job.ssh_private_key:
            key_path = ws / "secrets" / "deploy_key"
            key_path.touch(mode=0o600)
            key_path.write_text(job.ssh_private_key.rstrip("\n") + "\n")
        self.pin_options: list[str] = []

    def _git(self, ws: Path, *args: str) -> str:
        job = self.job
        protocol = (["-c", "protocol.allow=never", "-c", "protocol.file.allow=always"] if job.is_local else
                    ["-c", "protocol.allow=never", "-c", "protocol.https.allow=always",
                     "-c", "protocol.http.allow=always", "-c", "protocol.ssh.allow=always",
                     "-c", "http.followRedirects=false", *self.pin_options])
        return self._run([self.git, *protocol, "-C", str(ws / "src"), *args], cwd=ws, capture=True,
                         what=f"git {args[0]}")

    def _fetch(self, ws: Path) -> str:
        job = self.job
        self._git(ws, "init", "-q")
        self.pinned: PinnedHost | None = None
        if not job.is_local:
            self._pin_remote(ws)
        wanted = job.commit if FULL_SHA_RE.match(job.commit or "") else job.ref
        self.reporter.log(f"fetching {wanted} from {job.source_url}")
        if self.pinned is not None and self.pinned.scheme == "ssh":
            self._fetch_over_ssh(ws, wanted)
        else:
            self._git(ws, "fetch", "--depth", "1", "--no-tags", job.source_url, wanted)
        commit = self._git(ws, "rev-parse", "FETCH_HEAD^{commit}").strip()
        if job.commit and not commit.startswith(job.commit.lower()):
            raise BuildFailed(f"{job.ref} is at {commit[:12]} now, not at the commit {job.commit} that was pushed")
        self._git(ws, "checkout", "-q", "--detach", commit)
        self.reporter.log(f"checked out {commit}")
        return commit

    def _pin_remote(self, ws: Path) -> None:
        """Refuse a source host that resolves to a non-public address; pin git to the checked one."""
        try:
            pinned = check_remote_source(self.job.source_url, parse_networks(self.job.allowed_networks))
        except (SourceRefused, ValueError) as error:
            raise BuildFailed(str(error)) from None
        self.reporter.log(f"{pinned.host} resolves to {pinned.address}: fetching from that address only")
        self.pinned, self.pin_options = pinned, git_pin_options(pinned)
        if pinned.scheme == "ssh":
            self.env["GIT_SSH_COMMAND"] = self._ssh_command(ws, pinned)

    # --- ssh sources ------------------------------------------------------------------------

    def _ssh_command(self, ws: Path, pinned: PinnedHost) -> str:
        """The ssh git runs: the deploy key only (never the worker's own keys, agent or ~/.ssh/config),
        no prompts, a bounded connect. Host keys: one listed in the pinned known-hosts file (ssh's
        /etc/ssh/ssh_known_hosts unless the runner was given another) must match; a host not listed
        there is trusted on first use, into this build's own known_hosts, and its key is logged."""
        key = ws / "secrets" / "deploy_key"
        # Known-hosts options take a list of files split at spaces: a path is double-quoted inside the option.
        argv = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={SSH_CONNECT_SECONDS}",
                "-o", "StrictHostKeyChecking=accept-new", "-o", f'UserKnownHostsFile="{ws / "home" / "known_hosts"}"',
                "-o", "UpdateHostKeys=no", "-o", "IdentitiesOnly=yes"]
        if self.ssh_known_hosts:
            argv += ["-o", f'GlobalKnownHostsFile="{self.ssh_known_hosts}"']
        argv += ["-i", str(key)] if key.exists() else ["-o", "PubkeyAuthentication=no"]
        return f"{shlex.join(argv)} {ssh_pin_options(pinned)}"

    def _fetch_over_ssh(self, ws: Path, wanted: str) -> None:
        """`git fetch` over ssh; a failure says why in words (refused key, changed host key)."""
        tail = _Tail(self.reporter)
        self.reporter = tail
        try:
            self._git(ws, "fetch", "--depth", "1", "--no-tags", self.job.source_url, wanted)
        except BuildFailed as failed:
            hint = next((hint for needle, hint in SSH_FAILURE_HINTS if any(needle in line for line in tail.lines)),
                        None)
            raise BuildFailed(f"{failed}: {hint}" if hint else str(failed)) from None
        finally:
            self.reporter = tail.reporter
        self._log_host_key(ws)

    def _log_host_key(self, ws: Path) -> None:
        """Say which host key this build trusted: the pinned one, or the one it met first (with its fingerprint)."""
        known_hosts = ws / "home" / "known_hosts"
        added = [line.split()[:3] for line in (known_hosts.read_text().splitlines() if known_hosts.exists() else [])
                 if len(line.split()) >= 3 and not line.startswith("#")]
        pinned_file = self.ssh_known_hosts or "/etc/ssh/ssh_known_hosts"
        if not added:
            self.reporter.log(f"ssh host key matched the one pinned in {pinned_file}")
        for name, kind, blob in added:
            self.reporter.log(f"ssh host key of {name} trusted on first use: {kind} {ssh_fingerprint(blob)} "
                              f"(pin it in {pinned_file} on the build workers to have it checked)")

    def _build(self, ws: Path, commit: str) -> None:
        job = self.job
        source = ws / "src"
        context = inside(source, job.context or ".")
        dockerfile = inside(source, job.dockerfile or "Dockerfile")
        if not dockerfile.is_file():
            raise BuildFailed(f"no Dockerfile at {job.dockerfile!r} (context {job.context!r})")
        if (context / "hooks").is_dir() or (dockerfile.parent / "hooks").is_dir():
            self.reporter.log("note: Docker Hub's hooks/ scripts are not run by Wharf")
        message = job.message or self._git(ws, "log", "-1", "--format=%B", commit).strip()
        builtins = {
            "SOURCE_BRANCH": job.source_branch, "SOURCE_COMMIT": commit, "COMMIT_MSG": message,
            "DOCKER_REPO": f"{job.public_host}/{job.repository}", "DOCKERFILE_PATH": job.dockerfile,
            "DOCKER_TAG": job.tag, "IMAGE_NAME": f"{job.public_host}/{job.repository}:{job.tag}",
        }
        argv = [*self._buildah_global(ws), "bud", "--isolation", "chroot", "--tls-verify=false",
                "--authfile", str(ws / "auth.json"), "-f", str(dockerfile), "-t", job.image]
        for name, value in {**builtins, **job.build_args}.items():
            argv += ["--build-arg", f"{name}={value}"]
        for secret_id, value in job.secrets.items():
            path = ws / "secrets" / f"secret-{len(argv)}"
            path.touch(mode=0o600)
            path.write_text(value)
            argv += ["--secret", f"id={secret_id},src={path}"]
        self.reporter.log(f"building {job.dockerfile} in {job.context or '.'} as {job.repository}:{job.tag}")
        self._run([*argv, str(context)], cwd=source, what="buildah bud")

    def _push(self, ws: Path) -> str:
        job = self.job
        digest_file = ws / "tmp" / "digest"
        self.reporter.log(f"pushing {job.repository}:{job.tag}")
        self._run([*self._buildah_global(ws), "push", "--tls-verify=false", "--authfile", str(ws / "auth.json"),
                   "--digestfile", str(digest_file), job.image, f"docker://{job.image}"], cwd=ws, what="buildah push")
        digest = digest_file.read_text().strip()
        self.reporter.log(f"pushed {job.repository}:{job.tag} as {digest}")
        return digest

    def _buildah_global(self, ws: Path) -> list[str]:
        return [self.buildah, "--root", str(ws / "root"), "--runroot", str(ws / "runroot"),
                "--storage-driver", "vfs"]

    # --- processes --------------------------------------------------------------------------

    def _mask(self, text: str) -> str:
        for secret in self.masks:
            text = text.replace(secret, "***")
        return text

    def _check_stop(self) -> None:
        if self.reporter.cancelled():
            raise BuildStopped(constants.CANCELLED, "build cancelled")
        if time.monotonic() > self.deadline:
            raise BuildStopped(constants.TIMED_OUT, f"build timed out after {self.job.timeout:g} seconds")

    def _run(self, argv: list[str], *, cwd: Path, what: str, capture: bool = False) -> str:
        """Run `argv` in its own process group, streaming its output to the log (or returning it)."""
        self._check_stop()
        process = subprocess.Popen(argv, cwd=cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        captured: list[str] = []
        lines: queue.SimpleQueue[str] = queue.SimpleQueue()

        def pump() -> None:  # reads only: the reporter (database, Redis) is used from this thread alone
            assert process.stdout is not None
            for raw in process.stdout:
                lines.put(self._mask(raw.decode(errors="replace").rstrip("\n")))

        def drain() -> None:
            while not lines.empty():
                line = lines.get()
                captured.append(line) if capture else self.reporter.log(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            while process.poll() is None:
                drain()
                self._check_stop()
                try:
                    process.wait(timeout=POLL_SECONDS)
                except subprocess.TimeoutExpired:
                    pass
        except BaseException:  # cancel, timeout, or anything else (Celery's soft time limit strikes anywhere)
            self._kill_group(process)
            raise
        finally:
            reader.join(timeout=5)
            drain()
        if process.returncode != 0:
            if capture:
                for line in captured[-20:]:
                    self.reporter.log(line)
            raise BuildFailed(f"{what} exited with status {process.returncode}")
        return "\n".join(captured)

    @staticmethod
    def _kill_group(process: subprocess.Popen) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left of it (children included)."""
        for sig, grace in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
