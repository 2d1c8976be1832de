"""Property-based run of every operation in the served OpenAPI schema (schemathesis, pinned in
requirements-dev.txt) against the WSGI app: no 500s, and every documented answer matches its schema.

Derandomized and bounded (MAX_EXAMPLES per operation). The run has its own user, namespace,
repository, organization, team and access token; path parameters naming them are pointed at those
so the examples reach real objects instead of 404s.
"""

from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from accounts.models import Namespace
from accounts.services import access_token_create
from hub.api import issue_api_token
from repositories.models import Collaborator
from tests.factories import RepositoryFactory, UserFactory, make_organization, team
from tests.registry.helpers import push_image, token_for

MAX_EXAMPLES = 10

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@pytest.fixture
def world(db, client):
    """The run's own user (signed in through the header), namespace, repository, team and token."""
    owner = UserFactory()
    friend = UserFactory()
    namespace = Namespace.objects.get(user=owner)
    repository = RepositoryFactory(namespace=namespace, name="fuzzed")
    Collaborator.objects.create(repository=repository, user=friend)
    name = f"{owner.username}/fuzzed"
    push_image(client, name, token_for(client, owner.username, f"repository:{name}:pull,push"), tag="latest")
    organization = make_organization(owner)
    group = team(organization, name="fuzzers")
    token, _ = access_token_create(user=owner, label="fuzz", scope="repo:admin")
    return SimpleNamespace(
        headers={"Authorization": f"Bearer {issue_api_token(user=owner)}"},
        path={"namespace": owner.username, "repository": "fuzzed", "name": "fuzzed", "tag": "latest",
              "org": organization.name, "team": group.name, "group": group.name, "id": str(token.pk),
              "username": owner.username},
        friend=friend,
    )


def aim(case, world) -> None:
    """Point path parameters at the run's objects (the rest of the case stays generated)."""
    for key in list(case.path_parameters or {}):
        if key in world.path:
            value = world.path[key]
            if key == "username" and "/collaborators/" in case.path:
                value = world.friend.username
            case.path_parameters[key] = value


@pytest.fixture(autouse=True)
def lenient_login_throttle(settings):
    settings.REGISTRY_AUTH_MAX_FAILURES = 10_000  # the fuzzed logins fail on purpose
    settings.REGISTRY_AUTH_MAX_FAILURES_PER_IP = 10_000


@contextmanager
def keep_test_connection():
    """Like django.test.Client: the WSGI handler must not close the connection holding the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, world):
    aim(case, world)
    with keep_test_connection():
        response = case.call(headers=world.headers)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
