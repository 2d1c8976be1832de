"""Registry views are exempt from CSRF checks whichever way a request reaches them: the registry's fast path
(which skips the site's middleware) and the site's middleware (the fallback under /v2/, or a resolver that
reaches a registry view with CsrfViewMiddleware in front)."""

import pytest
from django.test import Client
from django.urls import resolve

from tests.registry.helpers import assert_error

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


@pytest.mark.parametrize("path", ["/v2/", "/v2/alice/app/manifests/v1", "/v2/alice/app/blobs/uploads/",
                                  "/v2/alice/app/blobs/sha256:" + "a" * 64, "/v2/no/such/thing/at/all"])
def test_every_registry_view_is_csrf_exempt(path):
    assert getattr(resolve(path).func, "csrf_exempt", False) is True


def test_a_post_to_an_unknown_registry_path_gets_the_registry_error_not_a_csrf_refusal():
    client = Client(enforce_csrf_checks=True)
    assert_error(client.post("/v2/no/such/thing/at/all", data=b"x", content_type="application/octet-stream"),
                 404, "NAME_UNKNOWN")


def test_an_upload_post_without_a_csrf_token_is_answered_by_the_registry():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/v2/alice/app/blobs/uploads/")
    assert_error(response, 401, "UNAUTHORIZED")
