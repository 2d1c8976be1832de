"""gunicorn's access log without build trigger tokens.

`/api/build/<uuid>/trigger/<token>/` (and the Bitbucket hook's `/api/build/<uuid>/bitbucket/<token>/`)
carry a secret in the path: every access-log atom (request line, path, raw URI, Referer, environ
variables) has that path segment replaced with `***`. gunicorn.conf.py sets `logger_class` to it.
"""

from __future__ import annotations

import re

from gunicorn.glogging import Logger

TOKEN_PATH_RE = re.compile(r"(/api/build/[^/?#\s]+/(?:trigger|bitbucket)/)[^/?#\s]+", re.IGNORECASE)


def redact(value):
    """`value` with trigger tokens in build hook paths replaced by `***` (non-strings unchanged)."""
    if isinstance(value, str) and "/api/build/" in value.lower():
        return TOKEN_PATH_RE.sub(r"\1***", value)
    return value


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        return {key: redact(value) for key, value in super().atoms(resp, req, environ, request_time).items()}
