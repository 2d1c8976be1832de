"""Run one build on this machine: fetch the commit, pull its base images, `buildah bud`, push, sign.

A plain class (no Celery, no database): the task gives it a `BuildJob`, a `Reporter` and a signer.
Each step runs in the build's sandbox (builds/sandbox.py), in its own process group; cancel (polled
through the reporter) and the timeout kill the group and then everything in the build's cgroups.
The steps see only what they need: the fetch the checkout and the deploy key; the pulls and the push
the image storage and the registry credential (written just before, removed just after); the build
(`buildah bud`, which runs the Dockerfile's RUN steps) the checkout read-only, the storage and the
build secrets, with no network and no credential. The workspace, the build's own disk, is removed
whatever happens.
"""

from __future__ import annotations

import base64
import collections
import contextlib
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
from builds.context_check import ContextRefused, base_images, check_context, declared_args
from builds.executor import BuildJob, BuildOutcome, Reporter, Signer
from builds.sandbox import (
    PUBLIC,
    SLIRP_DNS,
    BuildSandbox,
    Limits,
    Mount,
    SandboxUnavailable,
    public_network_missing,
    sandbox_problem,
)
from builds.source_safety import (
    PinnedHost,
    SourceRefused,
    check_pull_registry,
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
LOG_LIMIT_BYTES = 5 << 20  # a build's log stops growing here (the rest is dropped and counted)
LOG_LIMIT_LINES = 100_000  # ... or here: each line is an entry of the live log, however short
MAX_LINE_BYTES = 64 << 10  # a longer output line is cut there (the rest of it read and dropped)
DIGEST_MAX_BYTES = 200
DOCKERFILE_MAX_BYTES = 1 << 20
MESSAGE_MAX_BYTES = 32 << 10  # COMMIT_MSG: the rest of a longer commit message is left out
FAILURE_TAIL_LINES = 20  # a failed step whose output was kept: its last lines go to the log
SSH_FAILURE_HINTS = (
    ("Permission denied (publickey", "the server refused the deploy key: add the public key shown on the "
                                     "repository's Builds tab to the Git repository (read access is enough)"),
    ("Host key verification failed", "the server's ssh host key is not the one pinned for it on the build workers"),
    ("Connection refused", "nothing accepts ssh connections at that host and port"),
    ("Connection timed out", "the ssh server did not answer"),
)


_confinement_checked: list[str | None] = []


def confinement_problem() -> str | None:
    """Why this machine cannot sandbox builds (None: it can), checked once per process."""
    if not _confinement_checked:
        _confinement_checked.append(sandbox_problem())
    return _confinement_checked[0]


def _read_small_file(path: Path) -> str:
    """A short regular file a sandboxed step wrote, never following a symlink it may have planted."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, DIGEST_MAX_BYTES).decode(errors="replace")
    finally:
        os.close(fd)


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


class Unconfined:
    """No sandbox: the steps run as they are, as this user. Only for tests of the runner's own logic
    (with a fake buildah); the build worker always uses `BuildSandbox`."""

    slot = 0

    def open(self) -> None: ...
    def close(self) -> None: ...
    def kill_all(self) -> None: ...

    def chown_to_builder(self, path: Path, *, mode: int | None = None) -> None:
        if mode is not None:
            path.chmod(mode)

    def command(self, argv: list[str], **_options) -> tuple[list[str], tuple[int, ...]]:
        return argv, ()

    def started(self, process: subprocess.Popen):
        return lambda: None


class LocalRunner:
    """The local executor: git and buildah on this machine, each step in the build's sandbox."""

    def __init__(self, *, work_root: str | Path | None = None, buildah: str = "buildah", git: str = "git",
                 ssh_known_hosts: str | Path | None = None, confine: bool = True, limits: Limits | None = None,
                 log_limit: int = LOG_LIMIT_BYTES, log_line_limit: int = LOG_LIMIT_LINES):
        self.work_root = Path(work_root) if work_root else None
        self.buildah = buildah
        self.git = git
        # Host keys of ssh sources that must match (OpenSSH's GlobalKnownHostsFile); None: ssh's default.
        self.ssh_known_hosts = str(ssh_known_hosts) if ssh_known_hosts else None
        self.confine = confine
        self.limits = limits or Limits.from_environment()
        self.log_limit, self.log_line_limit = log_limit, log_line_limit

    # --- the public entry point --------------------------------------------------------------

    def execute(self, job: BuildJob, reporter: Reporter, sign: Signer) -> BuildOutcome:
        self.job, self.reporter = job, reporter
        self.deadline = time.monotonic() + job.timeout
        self.masks = tuple(s for s in (job.password, *job.secrets.values(), *job.extra_masks) if s)
        self.logged_bytes, self.logged_lines, self.dropped_lines = 0, 0, 0
        missing = [tool for tool in (self.git, self.buildah) if shutil.which(tool) is None]
        if missing:
            message = (f"{', '.join(missing)} not found on the build worker: install it "
                       f"(Debian: apt-get install -y git buildah) and restart the worker")
            reporter.log(message)
            return BuildOutcome(constants.FAILED, error=message)
        problem = confinement_problem() if self.confine else None
        if problem:
            message = f"this build worker cannot sandbox builds, so it runs none: {problem}"
            reporter.log(message)
            return BuildOutcome(constants.FAILED, error=message)
        if self.work_root:
            self.work_root.mkdir(parents=True, exist_ok=True)
        work_root = self.work_root or Path(tempfile.gettempdir())
        workspace = Path(tempfile.mkdtemp(prefix=f"wharf-build-{job.build_id}-", dir=work_root))
        self.sandbox: BuildSandbox | Unconfined = (
            BuildSandbox(workspace, limits=self.limits)
            if self.confine else Unconfined())
        commit = job.commit
        try:
            self.sandbox.open()
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
        except (BuildFailed, ContextRefused, SandboxUnavailable) as failed:
            reporter.log(f"build failed: {self._mask(str(failed))}")
            return BuildOutcome(constants.FAILED, commit=commit, error=self._mask(str(failed)))
        except Exception as error:  # noqa: BLE001 - a build ends with a state, whatever went wrong
            message = self._mask(f"{type(error).__name__}: {error}")
            reporter.log(f"build failed: {message}")
            return BuildOutcome(constants.FAILED, commit=commit, error=message)
        finally:
            if self.dropped_lines:
                reporter.log(f"(the log reached its limit of {self.log_limit:,} bytes or "
                             f"{self.log_line_limit:,} lines: {self.dropped_lines} lines left out)")
            self.sandbox.close()
            _remove_tree(workspace)

    # --- steps ------------------------------------------------------------------------------

    def _prepare(self, ws: Path) -> None:
        """The workspace (the build's own disk when confined): one folder per thing a step may see."""
        job = self.job
        for name in ("src", "fetch", "conf", "secrets"):
            (ws / name).mkdir(mode=0o755 if name == "conf" else 0o700)
        (ws / "fetch" / "home").mkdir(mode=0o700)
        (ws / "storage").mkdir(mode=0o700)
        self.sandbox.chown_to_builder(ws / "storage")
        registries = [job.registry] + ([job.public_host] if job.public_host != job.registry else [])
        self.registries = registries
        # Plain HTTP for the hub's internal registry only (HUB_INTERNAL_REGISTRY, by design); TLS verified elsewhere.
        (ws / "conf" / "registries.conf").write_text(
            'unqualified-search-registries = ["docker.io"]\nshort-name-mode = "permissive"\n\n'
            f'[[registry]]\nlocation = "{job.registry}"\ninsecure = true\n')
        # Steps on a public network (slirp4netns) resolve names through slirp's DNS: the host's resolver is
        # on a loopback or private address, which that network refuses.
        (ws / "conf" / "resolv.conf").write_text(f"nameserver {SLIRP_DNS}\n")
        nproc = self.limits.run_step_processes
        (ws / "conf" / "containers.conf").write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile=1024:1024", "nproc={nproc}:{nproc}"]\n\n'
            '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\n')
        for path in (ws / "conf").iterdir():
            path.chmod(0o644)
        self.base_env = {name: os.environ[name] for name in SAFE_ENV if name in os.environ}
        self.base_env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        self.git_env = {**self.base_env, "HOME": str(ws / "fetch" / "home"), "TMPDIR": str(ws / "fetch"),
                        "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
        self.buildah_env = {
            **self.base_env,
            "CONTAINERS_REGISTRIES_CONF": str(ws / "conf" / "registries.conf"),
            "CONTAINERS_CONF": str(ws / "conf" / "containers.conf"),
            "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot",
        }
        if job.ssh_private_key:
            key_path = ws / "fetch" / "deploy_key"
            key_path.touch(mode=0o600)
            key_path.write_text(job.ssh_private_key.rstrip("\n") + "\n")
        self.pin_options: list[str] = []

    def _fetch_mounts(self, ws: Path) -> list[Mount]:
        mounts = [Mount(ws / "src", writable=True), Mount(ws / "fetch", writable=True)]
        if self.job.is_local:
            mounts.append(Mount(Path(self.job.source_url)))
        return mounts

    @contextlib.contextmanager
    def _credentials(self, ws: Path):
        """The registry credential, on disk only while a pull or push step runs (never during `bud`)."""
        job = self.job
        folder = ws / "cred"
        folder.mkdir(mode=0o700)
        auth_file = folder / "auth.json"
        auth = base64.b64encode(f"{job.username}:{job.password}".encode()).decode()
        auth_file.touch(mode=0o600)
        auth_file.write_text(json.dumps({"auths": {host: {"auth": auth} for host in self.registries}}))
        self.sandbox.chown_to_builder(folder)
        try:
            yield auth_file
        finally:
            _remove_tree(folder)

    def _git(self, ws: Path, *args: str) -> str:
        job = self.job
        protocol = (["-c", "protocol.allow=never", "-c", "protocol.file.allow=always"] if job.is_local else
                    ["-c", "protocol.allow=never", "-c", "protocol.https.allow=always",
                     "-c", "protocol.http.allow=always", "-c", "protocol.ssh.allow=always",
                     "-c", "http.followRedirects=false", *self.pin_options])
        # A remote source is fetched as the build's own unprivileged uid (a user namespace on the build's id
        # range), with the network it needs to reach the pinned address; a local one (under
        # HUB_BUILD_LOCAL_ROOTS, the operator's) as the worker's user, which may read it, with every capability
        # dropped and no network at all (a file:// fetch needs none, and the worker's uid on the host's network
        # would reach its loopback and its abstract Unix sockets). No hook ever runs.
        return self._run([self.git, *protocol, "-c", "safe.directory=*", "-c", "core.hooksPath=/dev/null",
                          "-C", str(ws / "src"), *args],
                         cwd=ws / "src", capture=True, what=f"git {args[0]}", env=self.git_env,
                         mounts=self._fetch_mounts(ws), network=not job.is_local, user_namespace=not job.is_local)

    def _fetch(self, ws: Path) -> str:
        job = self.job
        if not job.is_local:
            self.sandbox.chown_to_builder(ws / "src")
            self.sandbox.chown_to_builder(ws / "fetch")
        self._git(ws, "init", "-q", "--template=")
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
            self.git_env["GIT_SSH_COMMAND"] = self._ssh_command(ws, pinned)

    # --- ssh sources ------------------------------------------------------------------------

    def _ssh_command(self, ws: Path, pinned: PinnedHost) -> str:
        """The ssh git runs: the deploy key only (never the worker's own keys, agent or ~/.ssh/config),
        no prompts, a bounded connect. Host keys: one listed in the pinned known-hosts file (ssh's
        /etc/ssh/ssh_known_hosts unless the runner was given another) must match; a host not listed
        there is trusted on first use, into this build's own known_hosts, and its key is logged."""
        key = ws / "fetch" / "deploy_key"
        # Known-hosts options take a list of files split at spaces: a path is double-quoted inside the option.
        known_hosts = ws / "fetch" / "home" / "known_hosts"
        argv = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={SSH_CONNECT_SECONDS}",
                "-o", "StrictHostKeyChecking=accept-new", "-o", f'UserKnownHostsFile="{known_hosts}"',
                "-o", "UpdateHostKeys=no", "-o", "IdentitiesOnly=yes"]
        if self.ssh_known_hosts:
            # A copy in the build's fetch folder: the fetch runs as the build's uid, which may not reach the
            # operator's file (nor should it see its folder).
            pinned_copy = ws / "fetch" / "pinned_known_hosts"
            with contextlib.suppress(FileNotFoundError):
                shutil.copyfile(self.ssh_known_hosts, pinned_copy)
                pinned_copy.chmod(0o644)
            argv += ["-o", f'GlobalKnownHostsFile="{pinned_copy}"']
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
        known_hosts = ws / "fetch" / "home" / "known_hosts"
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
        if dockerfile.stat().st_size > DOCKERFILE_MAX_BYTES:
            raise BuildFailed(f"the Dockerfile is larger than {DOCKERFILE_MAX_BYTES:,} bytes")
        with open(dockerfile, "rb") as handle:  # read here, by the worker, outside the build's memory limit
            dockerfile_text = handle.read(DOCKERFILE_MAX_BYTES).decode(errors="replace")
        check_context(context)
        message = job.message or self._git(ws, "log", "-1", "--format=%B", commit).strip()
        # COMMIT_MSG is one argument of buildah's: the kernel refuses one longer than 128 KiB.
        message = message.encode()[:MESSAGE_MAX_BYTES].decode(errors="ignore")
        self.sandbox.chown_to_builder(source)
        builtins = {
            "SOURCE_BRANCH": job.source_branch, "SOURCE_COMMIT": commit, "COMMIT_MSG": message,
            "DOCKER_REPO": f"{job.public_host}/{job.repository}", "DOCKERFILE_PATH": job.dockerfile,
            "DOCKER_TAG": job.tag, "IMAGE_NAME": f"{job.public_host}/{job.repository}:{job.tag}",
        }
        # Only the built-in args the Dockerfile declares (buildah warns about the others); the rule's own all.
        declared = declared_args(dockerfile_text)
        arguments = {**{name: value for name, value in builtins.items() if name in declared}, **job.build_args}
        self._pull_base_images(ws, dockerfile_text, arguments)
        argv = [*self._buildah_global(ws), "bud", "--isolation", "chroot", "--pull=never",
                "-f", str(dockerfile), "-t", job.image]
        for name, value in arguments.items():
            argv += ["--build-arg", f"{name}={value}"]
        for secret_id, value in job.secrets.items():
            path = ws / "secrets" / f"secret-{len(argv)}"
            path.touch(mode=0o600)
            path.write_text(value)
            argv += ["--secret", f"id={secret_id},src={path}"]
        self.sandbox.chown_to_builder(ws / "secrets", mode=0o700)
        network = "public addresses only" if self.limits.public_network else "no network"
        self.reporter.log(f"building {job.dockerfile} in {job.context or '.'} as {job.repository}:{job.tag} "
                          f"({network if self.confine else 'unconfined'})")
        step = self._step_dir(ws, "bud")
        mounts = [Mount(ws / "storage", writable=True), Mount(step, writable=True), Mount(ws / "conf"),
                  Mount(source), Mount(ws / "secrets")]
        if self.limits.public_network:
            mounts.append(self._resolv_conf(ws))
        self._run([*argv, str(context)], cwd=step, what="buildah bud", env=self._buildah_env(step), mounts=mounts,
                  network=PUBLIC if self.limits.public_network else False)

    def _pull_base_images(self, ws: Path, dockerfile: str, arguments: dict[str, str]) -> None:
        """Pull what the Dockerfile starts from, before `bud` runs without network and without the credential.

        Every registry is checked first (`check_pull_registry`): the hub's own images are pulled from the
        hub with the build's registry credential; any other registry must resolve to public addresses, and
        is pulled without the credential, TLS verified, in a network namespace of its own that reaches
        public addresses only (as RUN steps' public network): no redirect, token realm or layer URL of a
        hostile registry reaches this host, its loopback or a private network."""
        images = base_images(dockerfile, arguments)
        if not images:
            return
        hub_images, public_images = [], []
        for image in images:
            try:
                on_hub = check_pull_registry(image, hub_registries=self.registries)
            except SourceRefused as refused:
                raise BuildFailed(str(refused)) from None
            (hub_images if on_hub else public_images).append(image)
        if public_images and self.confine and (missing := public_network_missing()):
            raise BuildFailed(f"pulling {public_images[0]} needs a public network for the pull "
                              f"({', '.join(missing)} not found: apt-get install -y slirp4netns iptables)")
        step = self._step_dir(ws, "pull")
        common = [Mount(ws / "storage", writable=True), Mount(step, writable=True), Mount(ws / "conf")]
        if hub_images:
            with self._credentials(ws) as auth_file:
                for image in hub_images:
                    # Always from the internal registry (plain HTTP by design, so TLS is off there only),
                    # never through the public host's name, then named as the Dockerfile names it.
                    internal = f"{self.job.registry}/{image.partition('/')[2]}"
                    self.reporter.log(f"pulling {image}" + (f" (as {internal})" if internal != image else ""))
                    self._run([*self._buildah_global(ws), "pull", "--tls-verify=false", "--authfile",
                               str(auth_file), "--quiet", "--", internal], cwd=step,
                              what=f"buildah pull {internal}", env=self._buildah_env(step),
                              mounts=[*common, Mount(auth_file.parent)], network=True)
                    if internal != image:
                        self._run([*self._buildah_global(ws), "tag", internal, image], cwd=step,
                                  what=f"buildah tag {image}", env=self._buildah_env(step), mounts=common,
                                  network=False)
        for image in public_images:
            self.reporter.log(f"pulling {image} (public addresses only)")
            self._run([*self._buildah_global(ws), "pull", "--tls-verify=true", "--quiet", "--", image], cwd=step,
                      what=f"buildah pull {image}", env=self._buildah_env(step),
                      mounts=[*common, self._resolv_conf(ws)], network=PUBLIC)

    @staticmethod
    def _resolv_conf(ws: Path) -> Mount:
        return Mount(ws / "conf" / "resolv.conf", target=Path("/etc/resolv.conf"))

    def _push(self, ws: Path) -> str:
        job = self.job
        step = self._step_dir(ws, "push")
        digest_file = step / "digest"
        self.reporter.log(f"pushing {job.repository}:{job.tag}")
        with self._credentials(ws) as auth_file:
            self._run([*self._buildah_global(ws), "push", "--tls-verify=false", "--authfile", str(auth_file),
                       "--digestfile", str(digest_file), job.image, f"docker://{job.image}"], cwd=step,
                      what="buildah push", env=self._buildah_env(step),
                      mounts=[Mount(ws / "storage", writable=True), Mount(step, writable=True), Mount(ws / "conf"),
                              Mount(auth_file.parent)], network=True)
        digest = _read_small_file(digest_file).strip()
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise BuildFailed("buildah push wrote no digest")
        self.reporter.log(f"pushed {job.repository}:{job.tag} as {digest}")
        return digest

    def _step_dir(self, ws: Path, name: str) -> Path:
        """A fresh folder for one step (its HOME and temporary files), owned by the build's root."""
        step = ws / f"step-{name}"
        if step.exists():
            _remove_tree(step)
        step.mkdir(mode=0o700)
        self.sandbox.chown_to_builder(step)
        return step

    def _buildah_env(self, step: Path) -> dict[str, str]:
        return {**self.buildah_env, "HOME": str(step), "TMPDIR": str(step), "XDG_RUNTIME_DIR": str(step)}

    def _buildah_global(self, ws: Path) -> list[str]:
        return [self.buildah, "--root", str(ws / "storage" / "root"), "--runroot", str(ws / "storage" / "run"),
                "--storage-driver", "vfs"]

    # --- processes --------------------------------------------------------------------------

    def _mask(self, text: str) -> str:
        for secret in self.masks:
            text = text.replace(secret, "***")
        return text

    def _cut_line(self, raw: bytes, stream) -> str:
        """One line of a step's output as logged: masked, and cut at MAX_LINE_BYTES (the rest of an overlong
        line is read and dropped, so the worker never holds more of it; a secret the cut splits is dropped too)."""
        if raw.endswith(b"\n") or len(raw) < MAX_LINE_BYTES:
            return self._mask(raw.decode(errors="replace").rstrip("\n"))
        while (rest := stream.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
            pass
        text = raw.decode(errors="replace")
        longest = max((len(secret) for secret in self.masks), default=0)
        return self._mask(text[:max(len(text) - longest, 0)]) + f" [line cut at {MAX_LINE_BYTES:,} bytes]"

    def _log_capped(self, line: str) -> None:
        """Log a line unless the build's log has reached its size limit (then count it as dropped)."""
        self.logged_bytes += len(line) + 1
        self.logged_lines += 1
        if self.logged_bytes > self.log_limit or self.logged_lines > self.log_line_limit:
            self.dropped_lines += 1
            return
        self.reporter.log(line)

    def _check_stop(self) -> None:
        if self.reporter.cancelled():
            raise BuildStopped(constants.CANCELLED, "build cancelled")
        if time.monotonic() > self.deadline:
            raise BuildStopped(constants.TIMED_OUT, f"build timed out after {self.job.timeout:g} seconds")

    def _run(self, argv: list[str], *, cwd: Path, what: str, env: dict[str, str], mounts: list[Mount],
             network: bool | str, user_namespace: bool = True, capture: bool = False) -> str:
        """Run `argv` in the build's sandbox, in its own process group, streaming its output to the log
        (or returning it)."""
        self._check_stop()
        command, fds = self.sandbox.command(argv, mounts=mounts, network=network, user_namespace=user_namespace,
                                            chdir=cwd)
        try:
            process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, start_new_session=True, pass_fds=fds)
        finally:
            for fd in fds:
                os.close(fd)
        captured: list[str] = []
        captured_bytes = 0
        tail: collections.deque[str] = collections.deque(maxlen=FAILURE_TAIL_LINES)
        lines: queue.SimpleQueue[str] = queue.SimpleQueue()

        def pump() -> None:  # reads only: the reporter (database, Redis) is used from this thread alone
            assert process.stdout is not None
            while raw := process.stdout.readline(MAX_LINE_BYTES):
                lines.put(self._cut_line(raw, process.stdout))

        def drain() -> None:  # kept output (capture) is bounded like the log: a step may print without end
            nonlocal captured_bytes
            while not lines.empty():
                line = lines.get()
                if not capture:
                    self._log_capped(line)
                    continue
                tail.append(line)
                captured_bytes += len(line) + 1
                if captured_bytes <= self.log_limit:
                    captured.append(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        stop_network = lambda: None  # noqa: E731
        try:
            stop_network = self.sandbox.started(process)
            while process.poll() is None:
                drain()
                self._check_stop()
                try:
                    process.wait(timeout=POLL_SECONDS)
                except subprocess.TimeoutExpired:
                    pass
        except BaseException:  # cancel, timeout, or anything else (Celery's soft time limit strikes anywhere)
            self._kill_group(process)
            self.sandbox.kill_all()
            raise
        finally:
            stop_network()
            reader.join(timeout=5)
            drain()
        if process.returncode != 0:
            if capture:
                for line in tail:
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
