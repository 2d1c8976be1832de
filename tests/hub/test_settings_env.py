"""hub.settings reads every value from the environment, refuses bad values loudly and derives the
hosts, CSRF origins and registry service from HUB_PUBLIC_URL. Each case imports the settings module
in a child process with the environment under test."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from hub.settings import envbool, envfloat, envint, envsecret
from tests.hub.support import hub_env, settings_error, settings_values
from tests.live import REPO_ROOT

# --- The typed helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("yes", True), ("ON", True), (" true ", True),
                                               ("0", False), ("no", False), ("off", False), ("False", False)])
def test_envbool_reads_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("WHARF_TEST_FLAG", raw)
    assert envbool("WHARF_TEST_FLAG", not expected) is expected


def test_envbool_uses_the_default_when_unset_or_empty(monkeypatch):
    monkeypatch.setenv("WHARF_TEST_FLAG", "")
    assert envbool("WHARF_TEST_FLAG", True) is True


@pytest.mark.parametrize("raw", ["maybe", "2", "enabled"])
def test_envbool_refuses_other_values(monkeypatch, raw):
    monkeypatch.setenv("WHARF_TEST_FLAG", raw)
    with pytest.raises(ImproperlyConfigured, match="WHARF_TEST_FLAG"):
        envbool("WHARF_TEST_FLAG", False)


@pytest.mark.parametrize("raw", ["ten", "1.5", "8000/tcp"])
def test_envint_refuses_non_integers(monkeypatch, raw):
    monkeypatch.setenv("WHARF_TEST_NUMBER", raw)
    with pytest.raises(ImproperlyConfigured, match="WHARF_TEST_NUMBER"):
        envint("WHARF_TEST_NUMBER", 1)


def test_envint_reads_an_integer(monkeypatch):
    monkeypatch.setenv("WHARF_TEST_NUMBER", "42")
    assert envint("WHARF_TEST_NUMBER", 1) == 42


def test_envfloat_refuses_non_numbers(monkeypatch):
    monkeypatch.setenv("WHARF_TEST_NUMBER", "soon")
    with pytest.raises(ImproperlyConfigured, match="WHARF_TEST_NUMBER"):
        envfloat("WHARF_TEST_NUMBER", 1.0)


def test_envsecret_reads_the_file_named_by_name_file(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("WHARF_TEST_SECRET", "from-the-variable")
    monkeypatch.setenv("WHARF_TEST_SECRET_FILE", str(secret))
    assert envsecret("WHARF_TEST_SECRET") == "from-a-file"


# --- The settings module as a whole ---------------------------------------------------------

SNAPSHOT = ("DEBUG", "SECRET_KEY", "DATA_DIR", "HUB_PUBLIC_URL", "REGISTRY_SERVICE", "ALLOWED_HOSTS",
            "CSRF_TRUSTED_ORIGINS", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "DATABASES", "EMAIL_BACKEND",
            "EMAIL_FILE_PATH", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD", "EMAIL_USE_TLS",
            "EMAIL_USE_SSL")


@pytest.fixture(scope="module")
def settings_with(tmp_path_factory):
    """hub.settings as imported with the given variables (one child process per distinct environment)."""
    data_dir = tmp_path_factory.mktemp("settings")
    seen: dict[tuple, dict] = {}

    def load(**extra: str) -> dict:
        key = tuple(sorted(extra.items()))
        if key not in seen:
            seen[key] = settings_values(hub_env(data_dir, **extra), *SNAPSHOT)
        return seen[key]

    load.data_dir = data_dir
    return load



def test_bad_boolean_stops_the_settings_import(tmp_path):
    assert "ImproperlyConfigured" in settings_error(hub_env(tmp_path, DEBUG="maybe"))


def test_bad_integer_stops_the_settings_import(tmp_path):
    assert "ImproperlyConfigured" in settings_error(hub_env(tmp_path, PORT="eighty"))


def test_debug_is_off_by_default(settings_with):
    assert settings_with()["DEBUG"] is False


def test_secret_key_file_is_read(tmp_path):
    secret = tmp_path / "secret_key"
    secret.write_text("s3cr3t-from-a-mounted-file\n")
    values = settings_values(hub_env(tmp_path / "data", SECRET_KEY_FILE=str(secret)), "SECRET_KEY")
    assert values["SECRET_KEY"] == "s3cr3t-from-a-mounted-file"


def test_secret_key_is_generated_once_and_kept(tmp_path):
    first = settings_values(hub_env(tmp_path), "SECRET_KEY")["SECRET_KEY"]
    second = settings_values(hub_env(tmp_path), "SECRET_KEY")["SECRET_KEY"]
    assert first == second == (tmp_path / "keys" / "secret_key").read_text().strip()


def test_data_dir_defaults_to_data_under_the_repository_whatever_the_cwd(tmp_path):
    env = hub_env("")
    del env["HUB_DATA_DIR"]
    values = settings_values(env, "DATA_DIR", cwd=tmp_path)
    assert values["DATA_DIR"] == str(REPO_ROOT / "data")


def test_public_url_defaults_to_loopback_and_port(settings_with):
    values = settings_with(PORT="8123")
    assert (values["HUB_PUBLIC_URL"], values["REGISTRY_SERVICE"]) == ("http://127.0.0.1:8123", "127.0.0.1:8123")


@pytest.fixture
def public_settings(settings_with):
    return lambda url: settings_with(HUB_PUBLIC_URL=url)


def test_public_url_sets_allowed_hosts(public_settings):
    assert public_settings("https://hub.example.com/")["ALLOWED_HOSTS"] == ["hub.example.com"]


def test_public_url_sets_csrf_trusted_origins(public_settings):
    assert public_settings("https://hub.example.com:8443")["CSRF_TRUSTED_ORIGINS"] == ["https://hub.example.com:8443"]


def test_public_url_sets_the_registry_token_service(public_settings):
    assert public_settings("https://hub.example.com:8443")["REGISTRY_SERVICE"] == "hub.example.com:8443"


def test_public_url_loses_its_trailing_slash(public_settings):
    assert public_settings("https://hub.example.com/")["HUB_PUBLIC_URL"] == "https://hub.example.com"


def test_https_public_url_makes_cookies_secure(public_settings):
    values = public_settings("https://hub.example.com")
    assert values["SESSION_COOKIE_SECURE"] is True and values["CSRF_COOKIE_SECURE"] is True


def test_extra_hosts_are_allowed(settings_with):
    values = settings_with(HUB_PUBLIC_URL="https://hub.example.com", HUB_EXTRA_HOSTS="10.0.0.5, hub.internal")
    assert values["ALLOWED_HOSTS"] == ["hub.example.com", "10.0.0.5", "hub.internal"]


@pytest.mark.parametrize("url", ["hub.example.com", "ftp://hub.example.com", "https:///path"])
def test_bad_public_url_is_refused(tmp_path, url):
    assert "HUB_PUBLIC_URL" in settings_error(hub_env(tmp_path, HUB_PUBLIC_URL=url))


EMAIL_SETTINGS = ("EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD",
                  "EMAIL_USE_TLS", "EMAIL_USE_SSL")


def test_email_defaults_to_files_in_the_data_dir(settings_with):
    values = settings_with()
    assert (values["EMAIL_BACKEND"], values["EMAIL_FILE_PATH"]) == (
        "django.core.mail.backends.filebased.EmailBackend", str(settings_with.data_dir / "mail"))


def test_email_url_smtp_with_starttls(settings_with):
    values = settings_with(EMAIL_URL="smtp+tls://mailer%40example.com:p%40ss%3Aword@mail.example.com:2525")
    assert {name: values[name] for name in EMAIL_SETTINGS} == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "mail.example.com",
        "EMAIL_PORT": 2525, "EMAIL_HOST_USER": "mailer@example.com", "EMAIL_HOST_PASSWORD": "p@ss:word",
        "EMAIL_USE_TLS": True, "EMAIL_USE_SSL": False,
    }


@pytest.mark.parametrize(("url", "port", "ssl", "tls"), [("smtp://mail.example.com", 25, False, False),
                                                       ("smtps://mail.example.com", 465, True, False)])
def test_email_url_default_ports(settings_with, url, port, ssl, tls):
    values = settings_with(EMAIL_URL=url)
    assert (values["EMAIL_PORT"], values["EMAIL_USE_SSL"], values["EMAIL_USE_TLS"]) == (port, ssl, tls)


def test_email_url_with_another_scheme_is_refused(tmp_path):
    assert "EMAIL_URL" in settings_error(hub_env(tmp_path, EMAIL_URL="http://mail.example.com"))


def test_database_url_selects_postgresql(settings_with):
    database = settings_with(DATABASE_URL="postgres://wharf:pw@db.example.com:5433/wharf")["DATABASES"]["default"]
    assert (database["ENGINE"], database["HOST"], database["PORT"], database["NAME"]) == (
        "django.db.backends.postgresql", "db.example.com", 5433, "wharf")


def test_sqlite_database_lives_in_the_data_dir_by_default(settings_with):
    database = settings_with()["DATABASES"]["default"]
    assert (database["ENGINE"], database["NAME"]) == (
        "django.db.backends.sqlite3", str(settings_with.data_dir / "hub.sqlite3"))


# --- Security headers on every response -----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("header", "value"), [("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
                                               ("Referrer-Policy", "same-origin"),
                                               ("Cross-Origin-Opener-Policy", "same-origin")])
def test_security_headers_are_sent(client, header, value):
    assert client.get("/").headers[header] == value
