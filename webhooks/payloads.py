"""Pure builders for what a webhook POSTs: Docker Hub's payload (REFERENCE.md §5) and our extra events.

No Django here: callers pass plain values. `encode()` gives the exact bytes that are sent and signed.
"""

from __future__ import annotations

import hashlib
import hmac
import json

PUSH = "push"
TAG_DELETE = "tag_delete"
REPOSITORY_DELETE = "repository_delete"
BUILD_SUCCESS = "build_success"
BUILD_FAILURE = "build_failure"
PING = "ping"

# Events a webhook may subscribe to (ping is sent on request only, whatever the subscription).
EVENTS: tuple[str, ...] = (PUSH, TAG_DELETE, REPOSITORY_DELETE, BUILD_SUCCESS, BUILD_FAILURE)
EVENT_LABELS = {
    PUSH: "Image pushed",
    TAG_DELETE: "Tag deleted",
    REPOSITORY_DELETE: "Repository deleted",
    BUILD_SUCCESS: "Build succeeded",
    BUILD_FAILURE: "Build failed",
    PING: "Test delivery",
}
# The key of each event's own section, next to `callback_url` and `repository`.
DATA_KEYS = {
    PUSH: "push_data",
    TAG_DELETE: "tag_data",
    REPOSITORY_DELETE: "delete_data",
    BUILD_SUCCESS: "build_data",
    BUILD_FAILURE: "build_data",
    PING: "ping_data",
}

USER_AGENT = "Wharf-Hookshot/1.0"
SIGNATURE_HEADER = "X-Hub-Signature-256"


def repository_section(*, base_url: str, namespace: str, name: str, is_private: bool, is_official: bool,
                       description: str, full_description: str, star_count: int, date_created: int,
                       status: str = "Active", is_trusted: bool = False) -> dict:
    """Docker Hub's `repository` object, keys in its order, every type as Docker Hub sends it."""
    return {
        "comment_count": 0,
        "date_created": int(date_created),
        "description": description or "",
        "dockerfile": "",
        "full_description": full_description or "",
        "is_official": bool(is_official),
        "is_private": bool(is_private),
        "is_trusted": bool(is_trusted),  # an automated (trusted) build repository
        "name": name,
        "namespace": namespace,
        "owner": namespace,
        "repo_name": f"{namespace}/{name}",
        "repo_url": f"{base_url}/r/{namespace}/{name}",
        "star_count": int(star_count),
        "status": status,
    }


def callback_url(*, base_url: str, namespace: str, name: str, callback_id: str) -> str:
    return f"{base_url}/u/{namespace}/{name}/hook/{callback_id}/"


def push_section(*, pushed_at: int, pusher: str, tag: str, digest: str, media_type: str) -> dict:
    """Docker Hub's `push_data` plus the pushed manifest's digest and media type."""
    return {
        "pushed_at": int(pushed_at),
        "pusher": pusher,
        "tag": tag,
        "images": [],
        "digest": digest,
        "media_type": media_type,
    }


def event_payload(*, event: str, callback: str, data: dict, repository: dict) -> dict:
    """The whole document: `callback_url`, the event's section, then `repository` (Docker Hub's order)."""
    return {"callback_url": callback, DATA_KEYS[event]: data, "repository": repository}


def encode(payload: dict) -> bytes:
    """The exact body: compact JSON in UTF-8, keys in insertion order."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def sign(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value: `sha256=` and the hex HMAC-SHA256 of the exact body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return hmac.compare_digest(sign(secret, body), header or "")
