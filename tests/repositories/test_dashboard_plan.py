"""The dashboard's namespaces (yours and your organizations') are looked up by key, not by reading
every account's namespace: `user_id = x OR organization_id IN (subquery)` was a walk of all of them
on PostgreSQL, 32 ms of the signed-in home page at 100,000 accounts (SQLite used both indexes for
that form too; PostgreSQL does only for a list of keys)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Namespace
from repositories.selectors import user_namespaces
from tests.factories import make_organization
from tests.query_plans import looks_up_namespaces_by, many_accounts, plan_of

pytestmark = pytest.mark.django_db


def test_user_namespaces_are_found_by_their_keys(alice, bob):
    acme = make_organization(alice, name="acme")
    make_organization(bob, name="bobcorp")
    many_accounts()
    with CaptureQueriesContext(connection) as captured:
        found = user_namespaces(alice)
    assert [namespace.name for namespace in found] == sorted([alice.username, "acme"])
    assert found[[n.name for n in found].index("acme")] == Namespace.objects.get(organization=acme)
    lookup = next(query["sql"] for query in captured.captured_queries if 'FROM "accounts_namespace"' in query["sql"])
    plan = plan_of(lookup)
    assert looks_up_namespaces_by(plan, "user_id") and looks_up_namespaces_by(plan, "organization_id"), plan
