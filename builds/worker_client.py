"""How the build worker talks to the hub: plain HTTP with a one-build token (no Django here).

The hub's side is `builds/worker_api.py`. Every call is a JSON POST to
`/api/build-worker/<build id>/<claim|events|sign|finish>` with `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import requests

from builds.executor import BuildJob, BuildOutcome

HTTP_TIMEOUT = 30
SIGN_TIMEOUT = 120
SYNC_SECONDS = 0.5  # log lines reach the hub at least this often while a build prints
CANCEL_POLL_SECONDS = 1.0
MAX_BATCH = 200  # lines of at most 8000 characters: under Django's 2.5 MB request body limit
MAX_BUFFERED = 20000  # lines kept while the hub cannot be reached; older ones are dropped
FINISH_ATTEMPTS = 8

logger = logging.getLogger(__name__)


class HubGone(Exception):
    """The hub will not run this build here (unknown token, not queued any more, deleted)."""


class HubError(RuntimeError):
    pass


def job_from_dict(data: dict) -> BuildJob:
    fields = {f.name for f in dataclasses.fields(BuildJob)}
    values = {key: value for key, value in data.items() if key in fields}
    for name in ("extra_masks", "allowed_networks"):
        values[name] = tuple(values.get(name) or ())
    return BuildJob(**values)


def job_to_dict(job: BuildJob) -> dict:
    return dataclasses.asdict(job)


class HubClient:
    def __init__(self, base_url: str, build_id: int, token: str):
        self.base_url = base_url.rstrip("/")
        self.build_id = build_id
        self.session = requests.Session()
        self.session.trust_env = False  # never through a proxy from the environment
        self.session.headers.update({"Authorization": f"Bearer {token}", "User-Agent": "wharf-build-worker"})

    def _post(self, action: str, body: dict, *, timeout: float = HTTP_TIMEOUT) -> requests.Response:
        return self.session.post(f"{self.base_url}/api/build-worker/{self.build_id}/{action}", json=body,
                                 timeout=timeout, allow_redirects=False)

    @staticmethod
    def _detail(response: requests.Response) -> str:
        try:
            return str(response.json().get("detail", ""))[:500] or response.reason
        except ValueError:
            return f"{response.status_code} {response.reason}"

    def claim(self) -> BuildJob | None:
        """The job, or None when the build stays queued (its namespace has no free slot)."""
        try:
            response = self._post("claim", {})
        except requests.RequestException as error:
            raise HubGone(f"the hub did not answer ({type(error).__name__}); "
                          "the dispatcher will send the build again") from None
        if response.status_code == 409:
            return None
        if response.status_code != 200:
            raise HubGone(f"{response.status_code}: {self._detail(response)}")
        return job_from_dict(response.json()["job"])

    def events(self, lines: list[str], state: str | None = None) -> bool:
        """Send log lines (and a new state); returns whether the build is to be cancelled."""
        body: dict = {"lines": lines}
        if state:
            body["state"] = state
        response = self._post("events", body)
        if response.status_code != 200:
            raise HubError(f"events: {response.status_code} {self._detail(response)}")
        return bool(response.json().get("cancel"))

    def sign(self, digest: str, commit: str) -> tuple[str, str]:
        """The executor's signer: the hub signs with its key (the worker never sees it)."""
        response = self._post("sign", {"digest": digest, "commit": commit}, timeout=SIGN_TIMEOUT)
        if response.status_code != 200:
            raise HubError(f"signing refused: {self._detail(response)}")
        answer = response.json()
        return answer["tag"], answer["digest"]

    def finish(self, outcome: BuildOutcome, *, attempts: int = FINISH_ATTEMPTS) -> None:
        """Report the outcome, retrying while the hub is unreachable (its stale-build sweep is the
        last resort: a build nobody finishes ends as timed out)."""
        body = dataclasses.asdict(outcome)
        for attempt in range(attempts):
            try:
                response = self._post("finish", body)
            except requests.RequestException as error:
                logger.warning("build %s: reporting its end failed (%s), retrying", self.build_id, error)
            else:
                if response.status_code == 200 or 400 <= response.status_code < 500:
                    if response.status_code != 200:
                        logger.warning("build %s: the hub refused its end: %s", self.build_id,
                                       self._detail(response))
                    return
                logger.warning("build %s: the hub answered %s to its end, retrying", self.build_id,
                               response.status_code)
            time.sleep(min(30.0, 2.0 ** attempt))


class HubReporter:
    """The runner's reporter: buffers log lines and sends them, with state changes, to the hub; the
    hub's answers carry the cancel flag. A hub that does not answer for a while loses no lines."""

    def __init__(self, client: HubClient):
        self.client = client
        self.buffer: list[str] = []
        self.synced_at = 0.0
        self.cancel = False
        self.pending_state: str | None = None

    def _sync(self, state: str | None = None) -> None:
        self.synced_at = time.monotonic()
        self.pending_state = state or self.pending_state
        while True:
            batch = self.buffer[:MAX_BATCH]
            try:
                self.cancel = self.client.events(batch, self.pending_state) or self.cancel
            except (requests.RequestException, HubError) as error:
                logger.warning("build %s: could not send its log (%s); keeping it", self.client.build_id, error)
                del self.buffer[:-MAX_BUFFERED]
                return
            del self.buffer[:len(batch)]
            self.pending_state = None
            if not self.buffer:
                return

    def log(self, line: str) -> None:
        self.buffer.append(line)
        if len(self.buffer) >= MAX_BATCH or time.monotonic() - self.synced_at >= SYNC_SECONDS:
            self._sync()

    def state(self, state: str) -> None:
        self._sync(state)

    def cancelled(self) -> bool:
        since = time.monotonic() - self.synced_at
        if since >= CANCEL_POLL_SECONDS or (self.buffer and since >= SYNC_SECONDS):
            self._sync()
        return self.cancel

    def flush(self) -> None:
        if self.buffer or self.pending_state:
            self._sync()
