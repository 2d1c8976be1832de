"""Account deletion with a typed confirmation; the name becomes a tombstone."""

import pytest
from django.urls import reverse

from accounts.models import Namespace, User
from tests.factories import make_organization


@pytest.mark.django_db
def test_delete_page_explains_consequences(client, alice):
    client.force_login(alice)
    html = client.get(reverse("accounts:account_delete")).content.decode()
    assert "This cannot be undone" in html
    assert f"Type “{alice.username}” to confirm" in html


@pytest.mark.django_db
def test_delete_refused_when_name_not_typed(client, alice):
    client.force_login(alice)
    response = client.post(reverse("accounts:account_delete"), {"confirm": "nope"})
    assert response.context["form"].errors["confirm"] == [f"That does not match. Type “{alice.username}” exactly."]
    assert User.objects.filter(pk=alice.pk).exists()


@pytest.mark.django_db
def test_delete_account_leaves_tombstone_and_signs_out(client, alice):
    client.force_login(alice)
    name = alice.username
    response = client.post(reverse("accounts:account_delete"), {"confirm": name})
    assert response["Location"] == "/"
    assert not User.objects.filter(username=name).exists()
    assert Namespace.objects.get(name=name).is_tombstone
    assert not client.get("/").context["user"].is_authenticated


@pytest.mark.django_db
def test_signup_with_deleted_name_refused(client, alice):
    client.force_login(alice)
    name = alice.username
    client.post(reverse("accounts:account_delete"), {"confirm": name})
    response = client.post(reverse("account_signup"), {"username": name, "email": "again@example.com",
                                                        "password1": "correct-horse-battery",
                                                        "password2": "correct-horse-battery"})
    assert response.context["form"].errors["username"] == [
        f"“{name}” belonged to a deleted account and cannot be reused. Please choose another name."
    ]
    assert not User.objects.filter(username=name).exists()


@pytest.mark.django_db
def test_delete_refused_for_last_owner_of_organization(client, alice):
    organization = make_organization(alice)
    client.force_login(alice)
    response = client.post(reverse("accounts:account_delete"), {"confirm": alice.username})
    assert response.context["form"].non_field_errors() == [
        f"You are the only owner of the organization “{organization.name}”: "
        "add another owner or delete the organization first."
    ]
    assert User.objects.filter(pk=alice.pk).exists()
