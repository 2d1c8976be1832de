"""Django admin: staff deactivate users."""

import pytest
from django.urls import reverse

from accounts.models import AccessToken, User
from accounts.services import access_token_create


@pytest.fixture
def admin_client_(client, staff):
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    return client


@pytest.mark.django_db
def test_deactivate_action(admin_client_, alice):
    access_token_create(user=alice, label="ci", scope="repo:read")
    response = admin_client_.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "deactivate_users", "_selected_action": [alice.pk]},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert not alice.is_active
    assert AccessToken.objects.get(user=alice).revoked_at is not None


@pytest.mark.django_db
def test_deactivate_action_skips_yourself(admin_client_, staff):
    admin_client_.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "deactivate_users", "_selected_action": [staff.pk]},
    )
    staff.refresh_from_db()
    assert staff.is_active


@pytest.mark.django_db
@pytest.mark.parametrize("model", ["user", "organization", "team", "namespace", "accesstoken"])
def test_admin_changelists_render(admin_client_, alice, model):
    assert admin_client_.get(reverse(f"admin:accounts_{model}_changelist")).status_code == 200


@pytest.mark.django_db
def test_admin_add_user_refuses_tombstoned_name(admin_client_):
    from django.utils import timezone

    from accounts.models import Namespace

    Namespace.objects.create(name="goneuser", kind=Namespace.Kind.USER, deleted_at=timezone.now())
    response = admin_client_.post(reverse("admin:accounts_user_add"), {
        "username": "goneuser", "email": "g@example.com",
        "password1": "correct-horse-battery", "password2": "correct-horse-battery", "usable_password": "true",
    })
    assert response.status_code == 200
    assert not User.objects.filter(username="goneuser").exists()
