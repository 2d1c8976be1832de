"""The home page suggests pull commands that exist for any repository (not a missing library/alpine), for
docker and podman, and lets them wrap instead of cutting them."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_home_suggests_generic_pull_commands_for_docker_and_podman(client):
    html = client.get(reverse("home")).content.decode()
    assert "library/alpine" not in html
    assert "docker pull " in html and "/&lt;namespace&gt;/&lt;repository&gt;</code>" in html
    assert "podman pull " in html


def test_home_commands_wrap_rather_than_being_cut():
    from django.conf import settings

    css = (settings.BASE_DIR / "static" / "css" / "wharf.css").read_text()
    assert ".features .command code { white-space: pre-wrap; overflow-wrap: anywhere; }" in css
