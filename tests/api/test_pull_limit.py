"""`/v2/namespaces/<namespace>/pull-limit`: staff set an account's or organization's plan; owners read it."""

import pytest

from accounts.models import Namespace
from tests.api.conftest import auth
from tests.factories import make_organization

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def url(name: str) -> str:
    return f"/v2/namespaces/{name}/pull-limit"


def test_staff_set_an_accounts_plan_and_clear_it(api, staff, alice, settings):
    settings.HUB_PULL_LIMIT_USER = 200
    response = api.patch(url(alice.username), {"pull_limit": 1000}, format="json", **auth(staff))
    assert response.status_code == 200
    assert response.json() == {"namespace": alice.username, "pull_limit": 1000, "default_pull_limit": 200,
                               "window_seconds": settings.HUB_PULL_LIMIT_WINDOW_SECONDS, "pull_limits_on": True}
    assert Namespace.objects.get(user=alice).pull_limit == 1000
    cleared = api.patch(url(alice.username), {"pull_limit": None}, format="json", **auth(staff))
    assert cleared.json()["pull_limit"] is None


def test_the_account_and_an_organizations_owners_read_it_but_may_not_change_it(api, alice, bob):
    assert api.get(url(alice.username), **auth(alice)).json()["pull_limit"] is None
    organization = make_organization(alice)
    assert api.get(url(organization.name), **auth(alice)).status_code == 200
    refused = api.patch(url(alice.username), {"pull_limit": 0}, format="json", **auth(alice))
    assert refused.status_code == 403
    assert Namespace.objects.get(user=alice).pull_limit is None


def test_anyone_else_gets_the_answer_an_unknown_name_gets(api, alice, bob):
    for name in (alice.username, "nobody-here"):
        assert api.get(url(name), **auth(bob)).status_code == 404
        assert api.patch(url(name), {"pull_limit": 5}, format="json", **auth(bob)).status_code == 404
    assert api.get(url(alice.username)).status_code == 401


@pytest.mark.parametrize("value", [-1, "many", 2**31])
def test_a_bad_value_is_refused_with_a_reason(api, staff, alice, value):
    response = api.patch(url(alice.username), {"pull_limit": value}, format="json", **auth(staff))
    assert response.status_code == 400
    assert "pull_limit" in response.json()


def test_a_change_by_staff_is_in_the_accounts_audit_log(api, staff, alice):
    from accounts.models import AuditEvent

    api.patch(url(alice.username), {"pull_limit": 50}, format="json", **auth(staff))
    api.patch(f"/v2/namespaces/{alice.username}/storage", {"quota_bytes": 1024}, format="json", **auth(staff))
    events = AuditEvent.objects.filter(account__user=alice).order_by("pk")
    assert [(event.action, event.actor_name, event.data) for event in events] == [
        ("namespace.pull_limit", staff.username, {"pull_limit": 50}),
        ("namespace.storage_quota", staff.username, {"quota_bytes": 1024})]
