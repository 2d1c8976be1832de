"""The hub's side of the build worker protocol (the worker's side is `builds/worker_client.py`).

`POST /api/build-worker/<build id>/<action>` with `Authorization: Bearer <one-build token>`:
- `claim`  → 200 {"job": …} (queued → cloning, with a push token for this repository only);
             409 when the namespace has no free slot (it stays queued); 410 when it is not queued;
- `events` {"lines": [...], "state": "building"} → {"cancel": bool};
- `sign`   {"digest", "commit"} → {"tag", "digest"}: the hub signs with its key and stores it (only the
             manifest the build's tag points to, with the build's commit, and one digest per build);
- `finish` {"state", "digest", "commit", "signature_tag", "error"} → 200 (once; a claimed build only;
             success must name the digest the hub signed for it).
A token that does not match a build still running answers 401, whatever the build id.
"""

from __future__ import annotations

import json
import logging

from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from builds import constants, lifecycle
from builds.executor import BuildOutcome
from builds.models import Build
from builds.worker_client import job_to_dict

logger = logging.getLogger(__name__)

MAX_LINES = 1000


def _error(status: int, detail) -> JsonResponse:
    return JsonResponse(detail if isinstance(detail, dict) else {"detail": detail}, status=status)


def _body(request: HttpRequest) -> dict:
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ValidationError({"detail": "The body must be a JSON object."}) from None
    if not isinstance(data, dict):
        raise ValidationError({"detail": "The body must be a JSON object."})
    return data


def _string(data: dict, key: str, limit: int = 4000) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise ValidationError({key: "A string."})
    return value[:limit]


def _claim(build: Build, data: dict) -> JsonResponse:
    try:
        job = lifecycle.build_start_for_worker(build)
    except lifecycle.BuildGone as gone:
        return _error(410, str(gone))
    if job is None:
        return _error(409, "No free build slot for this namespace: the build stays queued.")
    return JsonResponse({"job": job_to_dict(job)})


def _events(build: Build, data: dict) -> JsonResponse:
    lines = data.get("lines", [])
    if not isinstance(lines, list) or len(lines) > MAX_LINES or not all(isinstance(line, str) for line in lines):
        raise ValidationError({"lines": f"A list of at most {MAX_LINES} strings."})
    state = data.get("state") or None
    if state is not None and state not in constants.RUNNING:
        raise ValidationError({"state": f"One of {', '.join(sorted(constants.RUNNING))}."})
    return JsonResponse({"cancel": lifecycle.build_worker_report(build, lines=lines, state=state)})


def _sign(build: Build, data: dict) -> JsonResponse:
    tag, digest = lifecycle.build_sign(build, digest=_string(data, "digest", 135), commit=_string(data, "commit", 64))
    return JsonResponse({"tag": tag, "digest": digest})


def _finish(build: Build, data: dict) -> JsonResponse:
    outcome = BuildOutcome(state=_string(data, "state", 20), digest=_string(data, "digest", 135),
                           commit=_string(data, "commit", 64), signature_tag=_string(data, "signature_tag", 140),
                           error=_string(data, "error"))
    build = lifecycle.build_worker_finish(build, outcome)
    return JsonResponse({"state": build.state})


ACTIONS = {"claim": _claim, "events": _events, "sign": _sign, "finish": _finish}


@csrf_exempt
@require_POST
def worker_call(request: HttpRequest, build_id: int, action: str) -> JsonResponse:
    handler = ACTIONS.get(action)
    if handler is None:
        return _error(404, "Unknown action.")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    build = lifecycle.build_for_worker(build_id, token.strip()) if scheme.lower() == "bearer" and token else None
    if build is None:
        return _error(401, "This build token is not valid (the build ended, or it was sent again).")
    try:
        return handler(build, _body(request))
    except ValidationError as error:
        return _error(400, error.message_dict if hasattr(error, "error_dict") else {"detail": error.messages})
