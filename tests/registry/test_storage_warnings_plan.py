"""The dashboard's storage warnings look up the namespaces one owns by key: an OR across the joins to
teams and memberships read every account's namespace on PostgreSQL (14 ms of the signed-in home page
at 100,000 accounts)."""

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from registry.templatetags.registry_storage import storage_warnings
from tests.factories import make_organization
from tests.query_plans import looks_up_namespaces_by, many_accounts, plan_of

pytestmark = pytest.mark.django_db


def test_owned_namespaces_are_found_by_their_keys(alice, bob):
    make_organization(alice, name="acme")
    make_organization(bob, name="bobcorp")
    many_accounts()
    request = RequestFactory().get("/")
    request.user = alice
    with CaptureQueriesContext(connection) as captured:
        assert storage_warnings({"request": request}) == []
    lookup = next(query["sql"] for query in captured.captured_queries if 'FROM "accounts_namespace"' in query["sql"])
    plan = plan_of(lookup)
    assert looks_up_namespaces_by(plan, "user_id") and looks_up_namespaces_by(plan, "organization_id"), plan
