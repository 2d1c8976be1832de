"""Rules for what a webhook may be configured with; shared by the forms, the API and the services."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError

from lib.outbound import DeliveryFailed, DeliveryRefused, address_refusal, addresses, parse_networks, parse_url
from webhooks import payloads

MAX_HEADERS = 20
MAX_HEADER_VALUE = 1000
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
# Set by Wharf on every delivery, or by the HTTP client: a custom header may not replace them.
RESERVED_HEADERS = frozenset({
    "host", "content-length", "content-type", "user-agent", "transfer-encoding", "connection",
    "te", "trailer", "upgrade", "expect", "keep-alive", "proxy-authorization", "proxy-connection",
})
RESERVED_PREFIXES = ("x-hub-",)
MAX_SECRET = 255


def is_reserved_header(name: str) -> bool:
    """Set by Wharf on every delivery (X-Hub-*, User-Agent, Content-Type) or by the HTTP client, so never a
    custom header."""
    lowered = name.lower()
    return lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIXES)


def validate_url(url: str) -> str:
    url = (url or "").strip()
    try:
        parse_url(url)
    except DeliveryRefused as exc:
        raise ValidationError(f"Enter a valid URL: {exc}.", code="url") from None
    return url


def validate_address(url: str) -> str:
    """Refuse a URL whose host is (or resolves only to) an address deliveries may not reach.

    The same rules as at delivery (lib.outbound), checked when the webhook is saved so that the form
    or the API says so at once; deliveries check again (a DNS answer can change). A name that does not
    resolve now is accepted: the delivery reports it.
    """
    url = validate_url(url)
    target = parse_url(url)
    try:
        candidates = addresses(target)
    except DeliveryFailed:
        return url
    allowed = parse_networks(settings.HUB_WEBHOOK_ALLOWED_NETWORKS)
    reasons = [address_refusal(address, allowed) for address in candidates]
    if any(reason is None for reason in reasons):
        return url
    reason = reasons[0]
    if target.host != str(candidates[0]):
        reason = reason.replace(f"{candidates[0]} is", f"{target.host} resolves to {candidates[0]}, which is", 1)
    raise ValidationError(f"{reason}; webhooks reach public addresses only (HUB_WEBHOOK_ALLOWED_NETWORKS "
                          "allows others).", code="address")


def validate_events(events) -> list[str]:
    if not isinstance(events, list | tuple) or not events:
        raise ValidationError("Choose at least one event.", code="events")
    unknown = [event for event in events if event not in payloads.EVENTS]
    if unknown:
        raise ValidationError(f"Unknown event: {unknown[0]!s:.40}. Choose from {', '.join(payloads.EVENTS)}.",
                              code="events")
    return [event for event in payloads.EVENTS if event in events]  # canonical order, no duplicates


def validate_headers(headers) -> dict[str, str]:
    if headers in (None, ""):
        return {}
    if not isinstance(headers, dict):
        raise ValidationError("Headers must be an object of names to values.", code="headers")
    if len(headers) > MAX_HEADERS:
        raise ValidationError(f"At most {MAX_HEADERS} custom headers.", code="headers")
    clean: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in headers.items():
        if not isinstance(name, str) or not HEADER_NAME_RE.match(name):
            raise ValidationError(f"“{str(name)[:100]}” is not a valid header name.", code="header_name")
        if is_reserved_header(name):
            raise ValidationError(f"The {name} header is set by Wharf and cannot be replaced.", code="reserved")
        lowered = name.lower()
        if lowered in seen:
            raise ValidationError(f"The {name} header is given twice.", code="duplicate")
        seen.add(lowered)
        if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE or any(
            (ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in value
        ):
            raise ValidationError(f"The value of {name} must be text of at most {MAX_HEADER_VALUE} characters "
                                  "on one line.", code="header_value")
        clean[name] = value.strip()
    return clean


def parse_header_lines(text: str) -> dict[str, str]:
    """`Name: value` lines (the web form) into a dict; blank lines are skipped."""
    headers: dict[str, str] = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ValidationError(f"Line {number}: write “Name: value”.", code="header_line")
        name = name.strip()
        if name in headers:
            raise ValidationError(f"The {name} header is given twice.", code="duplicate")
        headers[name] = value.strip()
    return validate_headers(headers)


def format_header_lines(headers: dict[str, str]) -> str:
    return "\n".join(f"{name}: {value}" for name, value in (headers or {}).items())


def validate_secret(secret: str) -> str:
    secret = secret or ""
    if len(secret) > MAX_SECRET:
        raise ValidationError(f"The secret is limited to {MAX_SECRET} characters.", code="secret")
    if secret and (secret != secret.strip() or any(ord(ch) < 32 for ch in secret)):
        raise ValidationError("The secret must not start or end with spaces or contain control characters.",
                              code="secret")
    return secret
