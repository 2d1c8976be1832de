"""A real OpenID provider for the single sign-on browser test: allauth's own (allauth.idp.oidc), a second
Django site run by gunicorn on loopback with its own SQLite database (tests/e2e/test_sso_browser.py)."""
