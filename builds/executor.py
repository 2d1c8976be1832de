"""The executor interface: what runs a build job. `runner.LocalRunner` runs it on this machine; a
Kubernetes or VM executor only has to implement `Executor.execute` with the same job and reporter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class BuildJob:
    """Everything a build needs, as plain values: no database, no site secrets."""

    build_id: int
    source_url: str
    is_local: bool  # a local path under HUB_BUILD_LOCAL_ROOTS (already checked)
    commit: str  # full or abbreviated sha; empty means "the head of `ref`"
    ref: str  # refs/heads/<branch> or refs/tags/<tag>
    message: str
    dockerfile: str
    context: str
    build_args: dict[str, str]
    secrets: dict[str, str]
    registry: str  # host:port of the internal registry (plain HTTP)
    public_host: str  # host:port in image names people use
    repository: str  # namespace/name
    tag: str
    username: str
    password: str  # a short-lived personal access token, revoked when the build ends
    timeout: float
    ssh_private_key: str = ""
    extra_masks: tuple[str, ...] = field(default=())
    # Networks (CIDRs) a remote source may resolve into although they are not public (HUB_BUILD_ALLOWED_NETWORKS).
    allowed_networks: tuple[str, ...] = field(default=())

    @property
    def image(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"

    @property
    def source_branch(self) -> str:
        return self.ref.split("/", 2)[2] if self.ref.startswith("refs/") else self.ref


@dataclass(frozen=True)
class BuildOutcome:
    state: str  # one of constants.FINAL
    digest: str = ""
    commit: str = ""
    signature_tag: str = ""
    error: str = ""


class Reporter(Protocol):
    """How an executor talks back: log lines, state changes, and whether to stop."""

    def log(self, line: str) -> None: ...
    def state(self, state: str) -> None: ...
    def cancelled(self) -> bool: ...


# sign(digest, commit) -> (signature tag, signature manifest digest); raises on failure.
Signer = Callable[[str, str], tuple[str, str]]


class Executor(Protocol):
    def execute(self, job: BuildJob, reporter: Reporter, sign: Signer) -> BuildOutcome: ...
