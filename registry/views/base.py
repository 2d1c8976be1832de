"""RegistryView: authentication, scope check, repository lookup, headers and the error envelope."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views import View

from accounts.models import Namespace
from oci.names import InvalidName, display_name
from registry import ratelimits
from registry.access import RegistryAccess, authenticate_request, challenge
from registry.errors import (
    API_VERSION_HEADER,
    Denied,
    NameInvalid,
    NameUnknown,
    RegistryError,
    Unauthorized,
    Unsupported,
)
from registry.mirror.names import split_name
from registry.selectors import repository_named
from repositories.models import Repository
from repositories.permissions import DELETE, PULL, PUSH
from repositories.services import repository_get_or_create_for_push

logger = logging.getLogger(__name__)
ROOT_PUSH_MESSAGE = 'You cannot push a "root" repository. Please rename your repository to {user}/{repo}'


class RegistryView(View):
    """Base of every /v2/ view. Subclasses raise RegistryError; they never write error JSON."""

    repository_scoped = True
    # Which action each method needs; "delete" for DELETE.
    method_actions = {"GET": PULL, "HEAD": PULL, "POST": PUSH, "PUT": PUSH, "PATCH": PUSH, "DELETE": DELETE}
    creates_repository = False  # POST uploads and manifest PUT create the repository on first push
    # containers/image checks blobs with HEAD before pushing and cannot read a 401 without a body:
    # a caller who holds a token but may not pull gets "unknown blob", so it goes on to the POST that
    # tells it why it may not push. A private repository and a missing one still answer alike.
    missing_pull_means_unknown: type[RegistryError] | None = None
    # Methods whose handler finds the repository itself, in the same query as what it reads.
    lazy_repository_methods: frozenset[str] = frozenset()

    access: RegistryAccess
    repository: Repository | None
    namespace_name: str
    repository_name: str
    mirror_prefix: str | None = None  # the HUB_MIRRORS prefix of a mirrored name (registry/mirror)

    @classmethod
    def as_view(cls, **initkwargs):
        """The view, exempt from CSRF checks (what csrf_exempt sets; method_decorator on dispatch built two
        wrappers on every request)."""
        view = super().as_view(**initkwargs)
        view.csrf_exempt = True
        return view

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        refused = ratelimits.abuse_refusal(request)
        if refused is not None:
            return refused
        try:
            if request.method.lower() not in self.http_method_names or not hasattr(self, request.method.lower()):
                raise _method_not_allowed(self)
            if self.repository_scoped:
                self._resolve_name(kwargs.pop("name"))
            self.access = authenticate_request(request, scope=self.scope_for(request))
            if self.repository_scoped:
                self._authorize(request)
            response = super().dispatch(request, *args, **kwargs)
        except RegistryError as error:
            response = error.response(head=request.method == "HEAD")
        except Exception:
            # A bug, not bad input: log it with the traceback and still answer in the registry's format.
            logger.exception("registry error on %s %s", request.method, request.path)
            error = RegistryError("internal server error")
            response = error.response(head=request.method == "HEAD")
        response[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
        return response

    # --- names and scopes -----------------------------------------------------------------
    def _resolve_name(self, raw: str) -> None:
        try:
            self.namespace_name, self.repository_name = split_name(raw)
        except InvalidName as exc:
            raise NameInvalid(detail={"name": raw[:300], "reason": str(exc)}) from None
        self.raw_name = raw
        if self.namespace_name in settings.HUB_MIRRORS:
            self.mirror_prefix = self.namespace_name

    def required_action(self, request: HttpRequest) -> str:
        return self.method_actions[request.method]

    def scope_for(self, request: HttpRequest) -> str | None:
        if not self.repository_scoped:
            return None
        action = self.required_action(request)
        actions = "pull,push" if action == PUSH else action
        return f"repository:{self.raw_name}:{actions}"

    # --- authorization ----------------------------------------------------------------------
    def _authorize(self, request: HttpRequest) -> None:
        action = self.required_action(request)
        granted = self.access.actions(self.namespace_name, self.repository_name)
        if action not in granted:
            raise self._refusal(request, action)
        if request.method in self.lazy_repository_methods:
            self.repository = None
            return
        self.repository = self.find_repository()
        if self.repository is None:
            if not (self.creates_repository and action == PUSH):
                raise NameUnknown(detail={"name": self.display_name})
            namespace = Namespace.objects.filter(name=self.namespace_name, deleted_at=None).first()
            if namespace is None:
                raise NameUnknown(detail={"name": self.display_name})
            self.repository = repository_get_or_create_for_push(
                namespace=namespace, name=self.repository_name, user=self.access.user
            )

    def find_repository(self) -> Repository | None:
        return repository_named(namespace=self.namespace_name, name=self.repository_name)

    def _refusal(self, request: HttpRequest, action: str) -> RegistryError:
        """Pulls of what one may not see are 401 whether it exists or not; pushes are DENIED."""
        scope = self.scope_for(request)
        has_credentials = self.access.claims is not None or self.access.actor is not None
        if action == PULL and request.method == "HEAD" and has_credentials and self.missing_pull_means_unknown:
            return self.missing_pull_means_unknown()
        if action != PULL and self.access.is_authenticated:
            if self.namespace_name == "library" and not getattr(self.access.user, "is_staff", False):
                message = ROOT_PUSH_MESSAGE.format(user=self.access.username, repo=self.repository_name)
                return Denied(message)
            return Denied()
        return Unauthorized(
            "authentication required" if not self.access.is_authenticated else "insufficient scope",
            detail=[{"Type": "repository", "Name": self.raw_name, "Action": action}],
            headers={"WWW-Authenticate": challenge(scope, "insufficient_scope")},
        )

    @property
    def display_name(self) -> str:
        return display_name(self.namespace_name, self.repository_name)

    def url_name(self) -> str:
        """The repository name as the client wrote it in the URL (`ubuntu` stays `ubuntu`)."""
        return self.raw_name


def _method_not_allowed(view: View) -> RegistryError:
    allowed = [m.upper() for m in view.http_method_names if hasattr(view, m) and m != "options"]
    return Unsupported("method not allowed", headers={"Allow": ", ".join(allowed)})


def empty(status: int, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(b"", status=status)
    response["Content-Length"] = "0"
    del response["Content-Type"]
    for name, value in (headers or {}).items():
        response[name] = value
    return response
