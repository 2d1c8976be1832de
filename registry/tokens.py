"""The registry's token service: Docker token authentication (distribution docs/spec/auth).

- Keys: an ES256 (P-256) key and a self-signed certificate for it, made on first use in KEYS_DIR.
- `issue_registry_token`: the intersection of the asked and allowed actions (registry/grants.py, every
  scope of a request at once), as a signed JWT.
- `verify_registry_token`: what the registry views call on every request (cached per token). A token
  names the account (`uid`) and the personal access token (`pat`) or credentials epoch (`ep`) it came
  from, or the organization access token (`oat`, no account: `sub` is the organization); one issued
  before the last revocation anywhere (accounts.revocation, read from the cache every few seconds) is
  checked against the database once, so a revoked token stops working within seconds without a query
  per request.
- Refresh tokens: the docker CLI logs in once (GET, `offline_token=true`) and then trades the
  refresh token for access tokens with POST. They carry another audience, so neither kind of
  token is ever accepted in place of the other.
- `token_view`: GET and POST `/token`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from accounts.credentials import (
    AccessTokenRequired,
    Authenticated,
    ClaimsRefused,
    TooManyAttempts,
    authenticate_registry_credentials,
    client_address,
    parse_basic_authorization,
    password_fingerprint,
    user_for_claims,
)
from accounts.models import AccessToken, User
from accounts.org_tokens import OrganizationTokenGrant, organization_token_stands
from accounts.revocation import revocation_epoch
from lib.keyfiles import create_exclusively, load_or_create_p256_key
from oci.names import InvalidName
from oci.scopes import ALL, CATALOG, REGISTRY, REPOSITORY, InvalidScope, Scope, parse_scopes
from registry.errors import TooManyRequests
from registry.grants import (  # noqa: F401 - allowed_repository_actions: registry/access.py asks here
    NOTHING,
    REGISTRY_ACTIONS,
    allowed_repository_actions,
    allowed_repository_actions_many,
)
from registry.mirror.hostmode import canonical_scopes
from registry.mirror.names import split_name
from registry.ratelimits import account_pull_limit, organization_pull_limit, pull_limits_on
from repositories.permissions import Actor

logger = logging.getLogger(__name__)

ALGORITHM = "ES256"
KEY_FILE = "registry-token.key"
CERT_FILE = "registry-token.crt"
LEEWAY_SECONDS = 30
MIN_TOKEN_TTL = 60
MAX_TOKEN_LENGTH = 16 * 1024
VERIFIED_CACHE_SIZE = 4096


# --- Signing key --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    private_key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    kid: str
    x5c: tuple[str, ...]

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The key id Docker's libtrust uses: base32 of 240 bits of sha256(SPKI DER), in groups of 4."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i:i + 4] for i in range(0, len(encoded), 4))


def _load_or_create_private_key(directory: Path) -> ec.EllipticCurvePrivateKey:
    return load_or_create_p256_key(directory / KEY_FILE, purpose="registry token signing key (ES256)")


def _build_certificate(key: ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Wharf registry token signer")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def _load_or_create_certificate(directory: Path, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    path = directory / CERT_FILE
    wanted = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    for _ in range(2):
        try:
            certificate = x509.load_pem_x509_certificate(path.read_bytes())
        except (FileNotFoundError, ValueError):
            certificate = None
        if certificate is not None and certificate.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == wanted:
            return certificate
        if certificate is None and not path.exists():
            create_exclusively(path, _build_certificate(key), 0o644)
        else:  # unreadable, or made for another key: replace it atomically
            temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}")
            temporary.write_bytes(_build_certificate(key))
            os.replace(temporary, path)
    raise ImproperlyConfigured(f"cannot write a certificate for the registry token key at {path}")


_signing_keys: dict[str, SigningKey] = {}
_signing_keys_lock = threading.Lock()


def get_signing_key() -> SigningKey:
    """The token signing key for settings.KEYS_DIR: loaded (or created) once per process."""
    directory = Path(settings.KEYS_DIR)
    cached = _signing_keys.get(str(directory))
    if cached is not None:
        return cached
    with _signing_keys_lock:
        cached = _signing_keys.get(str(directory))
        if cached is None:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            key = _load_or_create_private_key(directory)
            certificate = _load_or_create_certificate(directory, key)
            der = certificate.public_bytes(serialization.Encoding.DER)
            cached = SigningKey(private_key=key, certificate=certificate, kid=libtrust_key_id(key.public_key()),
                                x5c=(base64.b64encode(der).decode(),))
            _signing_keys[str(directory)] = cached
    return cached


def _sign(claims: dict[str, Any]) -> str:
    key = get_signing_key()
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM,
                      headers={"typ": "JWT", "kid": key.kid, "x5c": list(key.x5c)})


def warm_up() -> None:
    """Sign and check one throwaway token, so that a worker's first /token and registry request do not
    pay the signature library's first use (~10 ms). Reads no database and keeps nothing."""
    now = int(time.time())
    claims = {"iss": settings.HUB_PUBLIC_URL, "sub": "", "aud": settings.REGISTRY_SERVICE, "exp": now + 60,
              "nbf": now, "iat": now, "access": []}
    _decode(_sign(claims), audience=settings.REGISTRY_SERVICE)


def _decode(token: str, *, audience: str) -> dict[str, Any] | None:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        return jwt.decode(
            token, get_signing_key().public_key, algorithms=[ALGORITHM], audience=audience,
            issuer=settings.HUB_PUBLIC_URL, leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "aud", "exp", "nbf", "iat"]},
        )
    except jwt.PyJWTError:
        return None


# --- Issuing access tokens ------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: datetime
    access: list[dict[str, Any]]

    @property
    def issued_at_rfc3339(self) -> str:
        return self.issued_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def granted_scope(self) -> str:
        """The granted access in scope syntax, space-separated (the POST response's `scope`)."""
        return " ".join(f"{e['type']}:{e['name']}:{','.join(e['actions'])}" for e in self.access if e["actions"])


def issue_registry_token(*, actor: Actor, scopes: list[Scope], credentials: Authenticated | None = None
                         ) -> IssuedToken:
    """A signed access token granting, per scope, the asked actions the actor is allowed. With the
    `credentials` the actor logged in with, it names them, so it dies with them (verify_registry_token)."""
    repositories = allowed_repository_actions_many(actor, [s.name for s in scopes if s.type == REPOSITORY])
    access = []
    for scope in scopes:
        if scope.type == REPOSITORY:
            granted = scope.actions & repositories[scope.name]
        elif scope.type == REGISTRY and scope.name == CATALOG:
            granted = scope.actions  # everyone may list; the catalog filters what it shows
        else:
            granted = NOTHING
        access.append({"type": scope.type, "name": scope.name, "actions": sorted(granted)})
    now = int(time.time())
    expires_in = max(MIN_TOKEN_TTL, int(settings.REGISTRY_TOKEN_TTL))
    claims = {
        "iss": settings.HUB_PUBLIC_URL, "sub": actor.username, "aud": settings.REGISTRY_SERVICE,
        "exp": now + expires_in, "nbf": now, "iat": now, "jti": secrets.token_urlsafe(16), "access": access,
    }
    if credentials is not None and credentials.organization_token is not None:
        claims["oat"] = credentials.organization_token.pk  # so that it dies with the organization access token
    elif credentials is not None:
        claims.update(_credential_claims(credentials.user, credentials.token))
    if actor.user is not None and pull_limits_on():
        claims["pl"] = account_pull_limit(actor.user)  # so that manifest GETs read no database for it
    elif actor.organization_token is not None and pull_limits_on():
        claims["pl"] = organization_pull_limit(actor.organization_token.organization_id)
    return IssuedToken(token=_sign(claims), expires_in=expires_in,
                       issued_at=datetime.fromtimestamp(now, UTC), access=access)


# --- Verifying access tokens ----------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryClaims:
    subject: str
    expires_at: int
    jti: str
    access: tuple[dict[str, Any], ...]
    repositories: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict, repr=False, compare=False)
    catalog_actions: frozenset[str] = NOTHING
    issued_at: int = 0
    user_id: int | None = None  # the account that logged in (`uid`), None for anonymous
    access_token_id: int | None = None  # `pat`: the personal access token it logged in with
    credentials_epoch: int | None = None  # `ep`: the account's epoch, when it logged in with the password
    pull_limit: int | None = None  # `pl`: the account's pulls per window when issued (registry/ratelimits.py)
    organization_token_id: int | None = None  # `oat`: the organization access token it logged in with

    def actions_for(self, namespace: str, name: str) -> frozenset[str]:
        """The granted actions on `namespace/name`; `*` implies pull, push and delete."""
        return self.repositories.get((namespace, name), NOTHING)

    @property
    def has_registry_catalog(self) -> bool:
        return ALL in self.catalog_actions

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> RegistryClaims | None:
        access, subject = payload.get("access", []), payload.get("sub", "")
        if not isinstance(access, list) or not isinstance(subject, str):
            return None
        repositories: dict[tuple[str, str], frozenset[str]] = {}
        catalog: frozenset[str] = NOTHING
        for entry in access:
            if not isinstance(entry, dict):
                return None
            type_, name, actions = entry.get("type"), entry.get("name"), entry.get("actions", [])
            if not isinstance(type_, str) or not isinstance(name, str) or not isinstance(actions, list) \
                    or not all(isinstance(action, str) for action in actions):
                return None
            granted = frozenset(actions)
            if type_ == REPOSITORY:
                try:
                    key = split_name(name)
                except InvalidName:
                    continue
                if ALL in granted:
                    granted |= REGISTRY_ACTIONS
                repositories[key] = repositories.get(key, NOTHING) | granted
            elif type_ == REGISTRY and name == CATALOG:
                catalog |= granted
        credentials = {name: payload.get(name) for name in ("uid", "pat", "ep", "pl", "oat")}
        if not all(value is None or (isinstance(value, int) and not isinstance(value, bool))
                   for value in credentials.values()):
            return None
        return cls(subject=subject, expires_at=int(payload["exp"]), jti=str(payload.get("jti", "")),
                   access=tuple(access), repositories=repositories, catalog_actions=catalog,
                   issued_at=int(payload["iat"]), user_id=credentials["uid"],
                   access_token_id=credentials["pat"], credentials_epoch=credentials["ep"],
                   pull_limit=credentials["pl"], organization_token_id=credentials["oat"])


@dataclass
class _Verified:
    """A verified token and what the last revocation check said about it."""

    claims: RegistryClaims
    checked_at_epoch: float = float("-inf")  # the revocation epoch it was last checked against
    credentials_stand: bool = True


_verified: OrderedDict[tuple[str, str, str], _Verified] = OrderedDict()
_verified_lock = threading.Lock()
# A token issued up to this long after a revocation is checked too: `iat` is whole seconds, a token is
# signed a little after its login was checked (longer on a loaded worker), and nodes' clocks differ a little.
ISSUE_MARGIN_SECONDS = 10


def _credential_claims(user: User, token: AccessToken | None) -> dict[str, int]:
    """What a token says about the credentials it came from, so that it dies with them."""
    if token is not None:
        return {"uid": user.pk, "pat": token.pk}
    return {"uid": user.pk, "ep": user.credentials_epoch}


def _credentials_stand(claims: RegistryClaims) -> bool:
    """One query: the account is active and the access token (or the credentials epoch) unchanged, or
    the organization access token still usable."""
    if claims.organization_token_id is not None:
        return organization_token_stands(claims.organization_token_id)
    if claims.access_token_id is not None:
        return (AccessToken.objects.filter(pk=claims.access_token_id, user_id=claims.user_id, user__is_active=True,
                                           revoked_at=None)
                .filter(Q(expires_at=None) | Q(expires_at__gt=timezone.now())).exists())
    return User.objects.filter(pk=claims.user_id, is_active=True, credentials_epoch=claims.credentials_epoch).exists()


def _survives_revocations(entry: _Verified) -> bool:
    """False when the credentials behind the token were revoked. Checked in memory against the
    revocation epoch; the database is asked once per token issued before a revocation."""
    claims = entry.claims
    if claims.user_id is None and claims.organization_token_id is None:
        return True  # anonymous: nothing to revoke
    epoch = revocation_epoch()
    if claims.issued_at - ISSUE_MARGIN_SECONDS > epoch:
        return True  # issued after the last revocation anywhere
    if entry.checked_at_epoch < epoch:
        entry.credentials_stand = _credentials_stand(claims)
        entry.checked_at_epoch = epoch
    return entry.credentials_stand


def verify_registry_token(token: str) -> RegistryClaims | None:
    """The claims of a valid access token for this registry, or None (bad signature, audience, times,
    or credentials revoked since it was issued)."""
    if not isinstance(token, str):
        return None
    cache_key = (token, settings.REGISTRY_SERVICE, str(settings.KEYS_DIR))
    with _verified_lock:
        entry = _verified.get(cache_key)
        if entry is not None:
            if entry.claims.expires_at + LEEWAY_SECONDS > time.time():
                _verified.move_to_end(cache_key)
            else:
                del _verified[cache_key]
                entry = None
    if entry is None:
        payload = _decode(token, audience=settings.REGISTRY_SERVICE)
        claims = RegistryClaims.from_payload(payload) if payload is not None else None
        if claims is None:
            return None
        entry = _Verified(claims)
        with _verified_lock:
            _verified[cache_key] = entry
            while len(_verified) > VERIFIED_CACHE_SIZE:
                _verified.popitem(last=False)
    return entry.claims if _survives_revocations(entry) else None


# --- Refresh tokens -------------------------------------------------------------------------------


def _refresh_audience() -> str:
    return f"{settings.REGISTRY_SERVICE}#refresh"


REFRESH_FINGERPRINT_PURPOSE = "wharf.registry.refresh-token"


def issue_refresh_token(*, user: User, token: AccessToken | None = None) -> str:
    """A long-lived token the docker CLI trades for access tokens (POST grant_type=refresh_token)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.HUB_PUBLIC_URL, "sub": user.username, "aud": _refresh_audience(),
        "exp": now + int(settings.REGISTRY_REFRESH_TOKEN_TTL), "nbf": now, "iat": now,
        "jti": secrets.token_urlsafe(16), **_credential_claims(user, token),
    }
    if token is None:
        claims["pwd"] = password_fingerprint(user, REFRESH_FINGERPRINT_PURPOSE)
    return _sign(claims)


def authenticate_refresh_token(refresh_token: str) -> Authenticated | None:
    """The account behind a refresh token, if the user, the login and any access token still stand."""
    payload = _decode(refresh_token, audience=_refresh_audience())
    if payload is None:
        return None
    try:
        authenticated = user_for_claims(payload, fingerprint_purpose=REFRESH_FINGERPRINT_PURPOSE)
    except ClaimsRefused as refused:
        logger.info("refresh token refused for %r: %s", str(payload.get("sub"))[:100], refused)
        return None
    access_token = authenticated.token
    if access_token is not None:
        now = timezone.now()
        if access_token.last_used_at is None or (now - access_token.last_used_at).total_seconds() > 60:
            AccessToken.objects.filter(pk=access_token.pk).update(last_used_at=now)
    return authenticated


# --- The /token endpoint --------------------------------------------------------------------------


def _error(status: int, error: str, description: str) -> JsonResponse:
    return JsonResponse({"error": error, "error_description": description, "details": description}, status=status)


def _unauthorized(detail: str = "incorrect username or password") -> JsonResponse:
    # `details` is what Docker's client library prints after "unauthorized: " (as Docker Hub's does).
    response = JsonResponse({"details": detail}, status=401)
    response["WWW-Authenticate"] = f'Basic realm="{settings.HUB_PUBLIC_URL}"'
    return response


def _throttled(error: TooManyAttempts) -> HttpResponse:
    return TooManyRequests(str(error), headers={"Retry-After": str(error.retry_after)}).response()


def _check_service(service: str | None, *, required: bool) -> JsonResponse | None:
    if not service and not required:
        return None
    if service != settings.REGISTRY_SERVICE:
        return _error(400, "invalid_request", f"unknown service {str(service)[:100]!r}: this token service "
                                              f"is for {settings.REGISTRY_SERVICE!r}")
    return None


def _actor(authenticated: Authenticated | None) -> Actor:
    if authenticated is not None and authenticated.organization_token is not None:
        return Actor(organization_token=OrganizationTokenGrant.of(authenticated.organization_token))
    return Actor.for_user(authenticated.user, authenticated.token) if authenticated else Actor()


def _may_refresh(authenticated: Authenticated | None) -> bool:
    """Refresh tokens are for accounts: a client logged in with an organization access token sends it
    again (Basic) for each token, so revoking it needs nothing more."""
    return authenticated is not None and authenticated.user is not None


def _token_get(request: HttpRequest) -> HttpResponse:
    problem = _check_service(request.GET.get("service"), required=False)
    if problem:
        return problem
    try:
        scopes = canonical_scopes(request, parse_scopes(request.GET.getlist("scope")))
    except InvalidScope as error:
        return _error(400, "invalid_scope", str(error))
    authenticated = None
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header.strip().lower().startswith("basic"):
        credentials = parse_basic_authorization(header)
        if credentials is None:
            return _unauthorized()
        try:
            authenticated = authenticate_registry_credentials(*credentials, remote_addr=client_address(request))
        except TooManyAttempts as error:
            return _throttled(error)
        except AccessTokenRequired as error:
            return _unauthorized(str(error))
        if authenticated is None:
            return _unauthorized()
    issued = issue_registry_token(actor=_actor(authenticated), scopes=scopes, credentials=authenticated)
    body = {"token": issued.token, "access_token": issued.token, "expires_in": issued.expires_in,
            "issued_at": issued.issued_at_rfc3339}
    if _may_refresh(authenticated) and request.GET.get("offline_token", "").lower() in {"true", "1"}:
        body["refresh_token"] = issue_refresh_token(user=authenticated.user, token=authenticated.token)
    return JsonResponse(body)


def _token_post(request: HttpRequest) -> HttpResponse:
    form = request.POST
    problem = _check_service(form.get("service"), required=True)
    if problem:
        return problem
    if not form.get("client_id"):
        return _error(400, "invalid_request", "client_id is required")
    try:
        scopes = canonical_scopes(request, parse_scopes(form.getlist("scope")))
    except InvalidScope as error:
        return _error(400, "invalid_scope", str(error))
    grant_type = form.get("grant_type", "")
    if grant_type == "password":
        username, password = form.get("username", ""), form.get("password", "")
        if not username or not password:
            return _error(400, "invalid_request", "username and password are required")
        try:
            authenticated = authenticate_registry_credentials(username, password,
                                                              remote_addr=client_address(request))
        except TooManyAttempts as error:
            return _throttled(error)
        except AccessTokenRequired as error:
            return _unauthorized(str(error))
    elif grant_type == "refresh_token":
        if not form.get("refresh_token"):
            return _error(400, "invalid_request", "refresh_token is required")
        authenticated = authenticate_refresh_token(form["refresh_token"])
    else:
        return _error(400, "unsupported_grant_type", "grant_type must be password or refresh_token")
    if authenticated is None:
        return _unauthorized()
    issued = issue_registry_token(actor=_actor(authenticated), scopes=scopes, credentials=authenticated)
    body = {"access_token": issued.token, "scope": issued.granted_scope, "expires_in": issued.expires_in,
            "issued_at": issued.issued_at_rfc3339}
    if form.get("access_type") == "offline" and _may_refresh(authenticated):
        body["refresh_token"] = issue_refresh_token(user=authenticated.user, token=authenticated.token)
    return JsonResponse(body)


@csrf_exempt
@never_cache
def token_view(request: HttpRequest) -> HttpResponse:
    """GET and POST /token (Docker token authentication and its OAuth2 form)."""
    if request.method == "GET":
        return _token_get(request)
    if request.method == "POST":
        return _token_post(request)
    response = _error(405, "method_not_allowed", "use GET or POST")
    response["Allow"] = "GET, POST"
    return response
