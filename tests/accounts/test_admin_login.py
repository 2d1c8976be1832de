"""The admin logs in through the site's login: its second factor and its failure budget."""

import pytest
from allauth.mfa.totp.internal.auth import TOTP
from django.urls import reverse

from tests.accounts.test_mfa import totp_code
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture
def staff_with_totp(staff):
    staff.is_superuser = True
    staff.save()
    TOTP.activate(staff, SECRET)
    return staff


def test_admin_login_form_does_not_take_the_password_alone(client, staff_with_totp):
    response = client.post(reverse("admin:login") + "?next=/admin/",
                           {"username": staff_with_totp.username, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login") + "?next=")
    assert client.get(reverse("admin:accounts_user_changelist")).status_code == 302
    assert "_auth_user_id" not in client.session


def test_admin_after_password_alone_is_still_locked(client, staff_with_totp):
    response = client.post(reverse("account_login") + "?next=/admin/",
                           {"login": staff_with_totp.username, "password": PASSWORD})
    assert response["Location"] == reverse("mfa_authenticate")
    assert client.get(reverse("admin:accounts_user_changelist")).status_code == 302


def test_admin_with_password_and_totp_code(client, staff_with_totp):
    client.post(reverse("account_login") + "?next=/admin/", {"login": staff_with_totp.username, "password": PASSWORD})
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(SECRET)})
    assert response.status_code == 302
    assert client.get(reverse("admin:accounts_user_changelist")).status_code == 200


def test_admin_refuses_a_signed_in_non_staff_user(client, alice):
    client.force_login(alice)
    assert client.get(reverse("admin:login")).status_code == 403


def test_admin_login_is_throttled_like_the_web_login(client, staff_with_totp):
    login_url = client.get("/admin/", follow=True).redirect_chain[-1][0]
    assert login_url.startswith(reverse("account_login"))
    for _ in range(10):
        response = client.post(login_url, {"login": staff_with_totp.username, "password": "wrong-password"})
        assert response.status_code == 200
    response = client.post(login_url, {"login": staff_with_totp.username, "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed login attempts" in response.content.decode()
    assert client.get(reverse("admin:accounts_user_changelist")).status_code == 302
