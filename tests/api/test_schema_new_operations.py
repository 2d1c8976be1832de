"""The success answers of the organization, team and legacy-create operations match the served schema.

The fuzz run (test_schemathesis.py) rarely reaches them: its bodies name random namespaces, and one
delete or rename leaves later examples a 404. Here each is called once on real objects, through the
same WSGI app and schema, and checked with the same two checks.
"""

from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from hub.api import issue_api_token
from tests.api.test_schemathesis import keep_test_connection, schema
from tests.factories import make_organization, unique_name

CHECKS = [not_a_server_error, response_schema_conformance]


def call(method: str, path: str, user, *, path_parameters: dict | None = None, body=None):
    """Call one documented operation as `user`; fail unless the answer matches its schema."""
    kwargs = {"path_parameters": path_parameters or {}}
    if body is not None:
        kwargs.update(body=body, media_type="application/json")
    case = schema[path][method].Case(**kwargs)
    with keep_test_connection():
        response = case.call(headers={"Authorization": f"Bearer {issue_api_token(user=user)}"})
    case.validate_response(response, checks=CHECKS)
    return response


def test_legacy_repository_create_answer(alice):
    response = call("POST", "/v2/repositories/", alice, body={"namespace": alice.username, "name": "web"})
    assert response.status_code == 201


def test_organization_create_answer(alice):
    response = call("POST", "/v2/orgs/", alice, body={"orgname": unique_name("org"), "company": "Acme"})
    assert response.status_code == 201


def test_organization_delete_answer(alice):
    organization = make_organization(alice)
    response = call("DELETE", "/v2/orgs/{org}/", alice, path_parameters={"org": organization.name})
    assert response.status_code == 204


def test_team_edit_answer(alice, org):
    response = call("PATCH", "/v2/orgs/{org}/groups/{team}/", alice,
                    path_parameters={"org": org.name, "team": "readers"},
                    body={"name": "viewers", "description": "read-only"})
    assert response.status_code == 200
