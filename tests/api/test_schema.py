"""The OpenAPI schema at /api/schema/ and the docs page at /api/docs/ (no CDN)."""

import yaml


def test_schema_is_served(api, db):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/v2/users/login/" in schema["paths"]
    assert "/v2/repositories/{namespace}/{repository}/tags/{tag}/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["jwtAuth"]["scheme"] == "bearer"


def test_schema_as_yaml(api, db):
    response = api.get("/api/schema")
    assert yaml.safe_load(response.content)["info"]["title"] == "Wharf Hub API"


def test_docs_page_uses_the_vendored_swagger_ui(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()


def test_docs_page_is_not_part_of_the_schema(api, db):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert not [path for path in schema["paths"] if path.startswith("/api/")]


def test_docs_page_answers_other_methods_with_405(client, db):
    for method in (client.options, client.post, client.delete):
        assert method("/api/docs/").status_code == 405


def test_vendored_assets_exist():
    from django.conf import settings

    folder = settings.BASE_DIR / "static" / "vendor" / "swagger-ui"
    for name in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "LICENSE"):
        assert (folder / name).stat().st_size > 0
