"""SSRF safety for remote Git sources: the host is resolved once and checked with the outbound client's
network rule, git is pinned to the checked address, and redirects are never followed."""

import http.server
import ipaddress
import socket
import threading

import pytest

from builds import constants, source_safety
from builds.runner import LocalRunner
from builds.source_safety import SourceRefused, check_remote_source, remote_host
from tests.builds.test_runner import Reporter, job

PUBLIC = "93.184.215.14"


@pytest.mark.parametrize(("url", "expected"), [
    ("https://github.com/alice/app.git", ("https", "github.com", 443)),
    ("http://git.example.com:8080/app", ("http", "git.example.com", 8080)),
    ("ssh://git@git.example.com:2222/team/app.git", ("ssh", "git.example.com", 2222)),
    ("git@git.example.com:team/app.git", ("ssh", "git.example.com", 22)),
    ("https://[2001:db8::1]/app.git", ("https", "2001:db8::1", 443)),
    ("HTTPS://GIT.Example.COM./app.git", ("https", "git.example.com", 443)),
])
def test_remote_host(url, expected):
    assert remote_host(url) == expected


@pytest.mark.parametrize("url", ["ftp://example.com/a.git", "git://example.com/a.git", "https:///a.git"])
def test_other_schemes_and_hostless_urls_are_refused(url):
    with pytest.raises(SourceRefused):
        remote_host(url)


@pytest.mark.parametrize(("host", "why"), [
    ("127.0.0.1", "loopback"), ("[::1]", "loopback"), ("10.1.2.3", "private"), ("192.168.1.10", "private"),
    ("169.254.169.254", "link-local"), ("224.0.0.1", "multicast"), ("240.0.0.1", "private|reserved"),
    ("[::ffff:127.0.0.1]", "loopback"), ("0.0.0.0", "unspecified"), ("[fe80::1]", "link-local"),
])
@pytest.mark.parametrize("form", ["https://{}/a.git", "ssh://git@{}/a.git", "git@{}:a.git"])
def test_non_public_literals_are_refused(host, why, form):
    with pytest.raises(SourceRefused, match=why):
        check_remote_source(form.format(host))


def fake_dns(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    asked = []

    def getaddrinfo(host, port, *args, **kwargs):
        asked.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)  # the resolver is lib.outbound.addresses
    return asked


def test_a_name_is_resolved_once_and_checked(monkeypatch):
    asked = fake_dns(monkeypatch, {"git.example.com": [PUBLIC], "evil.example.com": ["10.0.0.5"]})
    pinned = check_remote_source("https://git.example.com/a.git")
    assert (pinned.host, pinned.port, pinned.address) == ("git.example.com", 443, PUBLIC)
    with pytest.raises(SourceRefused, match=r"10\.0\.0\.5 is a private address"):
        check_remote_source("git@evil.example.com:a.git")
    assert asked == ["git.example.com", "evil.example.com"]


def test_the_first_allowed_address_is_chosen(monkeypatch):
    fake_dns(monkeypatch, {"mixed.example.com": ["127.0.0.1", PUBLIC]})
    assert check_remote_source("https://mixed.example.com/a.git").address == PUBLIC


def test_allowed_networks_let_a_lan_git_server_through(monkeypatch):
    fake_dns(monkeypatch, {"git.lan": ["10.1.2.3"]})
    allowed = source_safety.parse_networks(["10.1.0.0/16"])
    assert check_remote_source("ssh://git@git.lan/a.git", allowed).address == "10.1.2.3"
    with pytest.raises(SourceRefused):
        check_remote_source("ssh://git@git.lan/a.git", source_safety.parse_networks(["10.2.0.0/16"]))


def test_unresolvable_hosts_are_refused(monkeypatch):
    fake_dns(monkeypatch, {})
    with pytest.raises(SourceRefused, match="cannot resolve"):
        check_remote_source("https://nowhere.invalid/a.git")


def test_pin_options():
    https = source_safety.PinnedHost("https", "git.example.com", 443, PUBLIC)
    assert source_safety.git_pin_options(https) == ["-c", f"http.curloptResolve=git.example.com:443:{PUBLIC}"]
    six = source_safety.PinnedHost("https", "git.example.com", 443, "2001:db8::1")
    assert source_safety.git_pin_options(six)[1].endswith(":[2001:db8::1]")
    ssh = source_safety.PinnedHost("ssh", "git.example.com", 22, PUBLIC)
    assert source_safety.git_pin_options(ssh) == []
    assert f"-o HostName={PUBLIC} -o HostKeyAlias=git.example.com" in source_safety.ssh_pin_options(ssh)


def test_the_check_is_the_outbound_clients_one():
    from lib import outbound

    assert source_safety.address_refusal is outbound.address_refusal
    assert outbound.address_refusal(ipaddress.ip_address("127.0.0.1"), []) == "127.0.0.1 is a loopback address"


# --- the runner, with git against recording HTTP servers on loopback ---------------------------------


class Recorder(http.server.BaseHTTPRequestHandler):
    redirect_to: str | None = None

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Host")))
        if self.server.redirect_to:
            self.send_response(301)
            self.send_header("Location", self.server.redirect_to + self.path)
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    servers = []

    def start(redirect_to=None):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        server.requests, server.redirect_to = [], redirect_to
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def remote_job(url: str, **overrides):
    return job("unused", "", source_url=url, is_local=False, **overrides)


def run(build_job):
    reporter = Reporter()
    outcome = LocalRunner().execute(build_job, reporter, lambda digest, commit: ("t", "d"))
    return outcome, reporter


def test_the_runner_refuses_a_loopback_source_without_contacting_it(http_server):
    server = http_server()
    outcome, reporter = run(remote_job(f"http://127.0.0.1:{server.server_port}/app.git"))
    assert outcome.state == constants.FAILED and "127.0.0.1 is a loopback address" in outcome.error
    assert server.requests == []
    assert not any(line.startswith("fetching") for line in reporter.lines)


def test_the_runner_refuses_an_ssh_source_on_a_private_address():
    outcome, _ = run(remote_job("git@192.168.0.1:team/app.git", ssh_private_key=""))
    assert outcome.state == constants.FAILED and "192.168.0.1 is a private address" in outcome.error


def test_git_connects_to_the_checked_address_only(http_server, monkeypatch):
    """The name resolves (for our check) to loopback, allowed here; git never resolves it itself."""
    server = http_server()
    fake_dns(monkeypatch, {"git.wharf-test.invalid": ["127.0.0.1"]})
    url = f"http://git.wharf-test.invalid:{server.server_port}/app.git"
    outcome, reporter = run(remote_job(url, allowed_networks=("127.0.0.0/8",)))
    assert outcome.state == constants.FAILED  # the server has no repository; it was reached, pinned
    assert server.requests and server.requests[0][1] == f"git.wharf-test.invalid:{server.server_port}"
    assert any("resolves to 127.0.0.1" in line for line in reporter.lines)


def test_git_does_not_follow_redirects(http_server):
    target = http_server()
    origin = http_server(redirect_to=f"http://127.0.0.1:{target.server_port}")
    outcome, _ = run(remote_job(f"http://127.0.0.1:{origin.server_port}/app.git", allowed_networks=("127.0.0.0/8",)))
    assert outcome.state == constants.FAILED
    assert origin.requests and target.requests == []


# --- registries of base images ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("reference", "registry"), [
    ("alpine", "docker.io"), ("library/alpine:3", "docker.io"), ("alice/app@sha256:" + "0" * 64, "docker.io"),
    ("ghcr.io/o/app:1", "ghcr.io"), ("localhost/app", "localhost"), ("127.0.0.1:5000/app", "127.0.0.1:5000"),
    ("[::1]:5000/app", "[::1]:5000"), ("Registry/app", "registry"), ("quay.io:443/o/app", "quay.io:443"),
])
def test_image_registry_reads_a_reference_as_containers_image_does(reference, registry):
    assert source_safety.image_registry(reference) == registry


@pytest.mark.parametrize("reference", [
    "127.0.0.1:5432/x", "localhost/x", "localhost:6379/x", "10.0.0.7/team/app", "192.168.1.1:5000/app",
    "169.254.169.254/latest/meta-data", "[::1]:8000/alice/app", "[fe80::1]/app", "0.0.0.0:8000/app",
])
def test_base_images_on_loopback_private_or_metadata_registries_are_refused(reference):
    with pytest.raises(SourceRefused, match="refused to pull"):
        source_safety.check_pull_registry(reference, hub_registries=["127.0.0.1:8000"])


def test_a_name_resolving_to_a_private_address_is_refused(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, 443)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 443))])
    with pytest.raises(SourceRefused, match=r"registry\.example\.com"):
        source_safety.check_pull_registry("registry.example.com/app", hub_registries=[])


def test_the_hubs_own_registries_are_the_hubs(monkeypatch):
    hubs = ["127.0.0.1:8000", "Hub.Example.com"]
    assert source_safety.check_pull_registry("127.0.0.1:8000/alice/base:v1", hub_registries=hubs) is True
    assert source_safety.check_pull_registry("hub.example.com/alice/base", hub_registries=hubs) is True
    # The hub's port only: another port on the same loopback address is not the hub.
    with pytest.raises(SourceRefused):
        source_safety.check_pull_registry("127.0.0.1:8001/alice/base", hub_registries=hubs)


def test_a_public_registry_is_allowed_and_docker_hub_is_checked_at_its_endpoint(monkeypatch):
    asked = []

    def resolve(host, port, *args, **kwargs):
        asked.append((host, port))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    assert source_safety.check_pull_registry("alpine:3.20", hub_registries=["127.0.0.1:8000"]) is False
    assert source_safety.check_pull_registry("ghcr.io/o/app", hub_registries=[]) is False
    assert asked == [("registry-1.docker.io", 443), ("ghcr.io", 443)]
