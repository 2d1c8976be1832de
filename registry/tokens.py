"""Placeholder: the token service is being written (see registry/tokens.py in a later commit)."""

from django.http import HttpRequest, HttpResponse


def token_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(status=404)
