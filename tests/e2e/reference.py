"""The CNCF reference registry (Debian's docker-registry 2.8.2) on a free loopback port.

It validates the client harness and the end-to-end tests today, and is the side-by-side baseline for
the benchmark. Filesystem storage in a temp dir, deletes enabled, optionally htpasswd (Basic) auth.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.live import GiveUp, Loopback, free_port, log_tail, stop_process, wait_until

REGISTRY_BINARY = "/usr/bin/docker-registry"


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash for htpasswd via libxcrypt (the `bcrypt` package is not installed); low cost, tests only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # deprecated, gone in Python 3.13; present on 3.11

        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    if not hashed or not hashed.startswith("$2"):
        raise RuntimeError("this libc cannot make bcrypt hashes")
    return hashed


@dataclass
class ReferenceRegistry(Loopback):
    port: int
    root: Path
    process: subprocess.Popen
    log_path: Path
    users: dict[str, str]

    @property
    def requires_auth(self) -> bool:
        return bool(self.users)

    def log(self) -> str:
        return log_tail(self.log_path)

    def stop(self) -> None:
        stop_process(self.process)


def _config(root: Path, port: int, htpasswd: Path | None) -> str:
    auth = ""
    if htpasswd is not None:
        auth = f"""auth:
  htpasswd:
    realm: wharf-e2e
    path: {htpasswd}
"""
    return f"""version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {root / "storage"}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: wharf-e2e-not-a-secret
{auth}"""


def start_reference(root: Path, *, users: dict[str, str] | None = None) -> ReferenceRegistry:
    """Start docker-registry under `root`; with `users` ({name: password}) it requires Basic auth."""
    if not Path(REGISTRY_BINARY).exists():
        raise RuntimeError(f"{REGISTRY_BINARY} is missing: apt-get install docker-registry")
    root.mkdir(parents=True, exist_ok=True)
    users = dict(users or {})
    htpasswd = None
    if users:
        htpasswd = root / "htpasswd"
        htpasswd.write_text("".join(f"{name}:{bcrypt_hash(password)}\n" for name, password in users.items()))
    port = free_port()
    config = root / "config.yml"
    config.write_text(_config(root, port, htpasswd))
    log_path = root / "registry.log"
    # It reads every REGISTRY_* variable as configuration: hand it none of ours.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(
        [REGISTRY_BINARY, "serve", str(config)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root,
    )
    log.close()
    registry = ReferenceRegistry(port=port, root=root, process=process, log_path=log_path, users=users)

    def answers() -> bool:
        if process.poll() is not None:
            raise GiveUp(f"docker-registry exited:\n{registry.log()}")
        return requests.get(f"{registry.url}/v2/", timeout=2).status_code in (200, 401)

    try:
        wait_until(answers, timeout=30, message="docker-registry to answer /v2/")
    except Exception:
        registry.stop()
        raise
    return registry


def remove_reference(registry: ReferenceRegistry) -> None:
    registry.stop()
    shutil.rmtree(registry.root, ignore_errors=True)
