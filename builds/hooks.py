"""INBOUND build triggers: one base receiver, one subclass per provider (RTD `WebhookMixin`).

- generic:   POST /api/build/<uuid>/trigger/<token>/   (REFERENCE.md §6 payload, Docker Hub's
             {"source_type","source_name","docker_tag"}, or an empty body: every rule)
- GitHub:    POST /api/build/<uuid>/github/            (push events; X-Hub-Signature-256 required)
- Bitbucket: POST /api/build/<uuid>/bitbucket/<token>/ (repo:push events)

Signatures are HMAC-SHA256 of the exact body with the source's webhook secret, compared with
`hmac.compare_digest`. Every exchange is logged (never the token or the secret).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from builds import constants, services
from builds.models import Build, BuildSource

logger = logging.getLogger("builds.hooks")
MAX_BODY = 1024 * 1024


class HookRefused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def signature_valid(secret: str, body: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), (header or "").strip().encode())


@method_decorator(csrf_exempt, name="dispatch")
class BuildHookView(View):
    """Parse, check, start builds. Subclasses override get_data, is_payload_valid and handle_webhook."""

    provider = "generic"
    trigger = constants.TRIGGER_GENERIC
    signature_header = "HTTP_X_HUB_SIGNATURE_256"
    requires_token = True
    requires_secret = False
    http_method_names = ["post"]
    # Providers that name the event in a header (GitHub, Bitbucket): a ping starts nothing, a push builds.
    label = ""
    event_header = ""
    ping_event = ""
    push_event = ""

    def post(self, request: HttpRequest, uuid, token: str = "") -> JsonResponse:
        self.request, self.source = request, None
        try:
            if not settings.HUB_BUILDS_ENABLED:
                raise HookRefused(503, "Automated builds are disabled on this hub.")
            self.source = self.get_source(uuid, token)
            self.body = request.body if len(request.body) <= MAX_BODY else b""
            if not self.is_payload_valid():
                raise HookRefused(403, "The payload signature (X-Hub-Signature-256) is missing or wrong.")
            self.data = self.get_data()
            builds = self.handle_webhook()
        except HookRefused as refused:
            logger.warning("build hook %s for %s refused (%s): %s", self.provider,
                           self.source.repository if self.source else uuid, refused.status, refused)
            response = JsonResponse({"detail": str(refused)}, status=refused.status)
            response._has_been_logged = True  # django.request would log the path, which holds the token
            return response
        except ValidationError as error:
            detail = error.message_dict if hasattr(error, "error_dict") else {"detail": error.messages}
            logger.warning("build hook %s for %s: invalid payload %s", self.provider, self.source.repository, detail)
            response = JsonResponse(detail, status=400)
            response._has_been_logged = True
            return response
        logger.info("build hook %s for %s: %d build(s) %s", self.provider, self.source.repository, len(builds),
                    [b.pk for b in builds])
        return JsonResponse(self.response_body(builds), status=202 if builds else 200)

    @staticmethod
    def response_body(builds: list[Build]) -> dict[str, Any]:
        return {"builds": [{"id": b.pk, "state": b.state, "ref": b.ref, "tag": b.tag, "commit": b.commit}
                           for b in builds],
                "detail": f"{len(builds)} build(s) queued" if builds else "nothing to build"}

    def get_source(self, uuid, token: str) -> BuildSource:
        source = BuildSource.objects.select_related("repository__namespace").filter(uuid=uuid).first()
        if source is None or (self.requires_token and not source.token_matches(token)):
            raise HookRefused(404, "Unknown build trigger: check the trigger URL (the token may have been rotated).")
        return source

    def is_payload_valid(self) -> bool:
        secret = self.source.webhook_secret
        if not secret:
            return not self.requires_secret
        return signature_valid(secret, self.request.body, self.request.META.get(self.signature_header, ""))

    def json_body(self) -> dict:
        if not self.body.strip():
            return {}
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise HookRefused(400, "The body is not JSON.") from None
        if not isinstance(data, dict):
            raise HookRefused(400, "The body must be a JSON object.")
        return data

    def get_data(self) -> dict:
        return self.json_body()

    def is_push(self) -> bool:
        """True for a push, False for the provider's ping; any other event is refused."""
        event = self.request.META.get(self.event_header, "")
        if event == self.ping_event:
            return False
        if event != self.push_event:
            raise HookRefused(400, f"Unsupported {self.label} event {event!r}: send {self.push_event} events.")
        return True

    def handle_webhook(self) -> list[Build]:
        data = self.data
        if not data:
            return services.builds_trigger_rules(source=self.source, trigger=self.trigger)
        if "commit" not in data and ("source_type" in data or "source_name" in data or "docker_tag" in data):
            kind = str(data.get("source_type") or "").lower() or None
            if kind not in (None, constants.BRANCH, constants.TAG):
                raise HookRefused(400, "source_type must be Branch or Tag.")
            return services.builds_trigger_rules(
                source=self.source, trigger=self.trigger, source_type=kind,
                source_name=_string(data.get("source_name")) or None,
                docker_tag=_string(data.get("docker_tag")) or None)
        info = data.get("commit_info") if isinstance(data.get("commit_info"), dict) else {}
        ref = _string(data.get("ref")) or f"refs/heads/{self.source.default_branch}"
        return services.builds_trigger(source=self.source, ref=ref, commit=_string(data.get("commit")),
                                       message=_string(info.get("message")), trigger=self.trigger)


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


class GitHubHookView(BuildHookView):
    provider = "github"
    trigger = constants.TRIGGER_GITHUB
    requires_token = False
    requires_secret = True  # the URL carries no token: the signature is the only proof
    label, event_header, ping_event, push_event = "GitHub", "HTTP_X_GITHUB_EVENT", "ping", "push"

    def handle_webhook(self) -> list[Build]:
        data = self.data
        if not self.is_push() or data.get("deleted"):
            return []
        head = data.get("head_commit") if isinstance(data.get("head_commit"), dict) else {}
        return services.builds_trigger(source=self.source, ref=_string(data.get("ref")),
                                       commit=_string(data.get("after")), message=_string(head.get("message")),
                                       trigger=self.trigger)


class BitbucketHookView(BuildHookView):
    provider = "bitbucket"
    trigger = constants.TRIGGER_BITBUCKET
    signature_header = "HTTP_X_HUB_SIGNATURE"  # Bitbucket Cloud signs with a secret as `X-Hub-Signature: sha256=…`
    label, event_header, ping_event, push_event = "Bitbucket", "HTTP_X_EVENT_KEY", "diagnostics:ping", "repo:push"

    def handle_webhook(self) -> list[Build]:
        if not self.is_push():
            return []
        push = self.data.get("push") if isinstance(self.data.get("push"), dict) else {}
        builds: list[Build] = []
        for change in push.get("changes") or []:
            new = change.get("new") if isinstance(change, dict) else None
            if not isinstance(new, dict) or new.get("type") not in ("branch", "tag"):
                continue
            target = new.get("target") if isinstance(new.get("target"), dict) else {}
            prefix = "refs/heads/" if new["type"] == "branch" else "refs/tags/"
            builds += services.builds_trigger(source=self.source, ref=prefix + _string(new.get("name")),
                                              commit=_string(target.get("hash")),
                                              message=_string(target.get("message")), trigger=self.trigger)
        return builds
