"""The SSRF-safe client (lib.outbound): refusals, allowed networks, no redirects, capped reads."""

import ipaddress
import socket
import time

import pytest

from lib import outbound as http
from tests.webhooks.receiver import Answer

LOOPBACK = http.parse_networks(["127.0.0.0/8"])


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://127.8.9.10:8080/", "http://10.1.2.3/", "http://192.168.1.1/",
    "http://172.16.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://224.0.0.1/",
    "http://[ff02::1]/", "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/", "http://100.64.0.1/",
    "http://[fe80::1]/", "http://[fd00::1]/", "http://240.0.0.1/",
])
def test_refuses_addresses_that_are_not_public(url):
    with pytest.raises(http.DeliveryRefused):
        http.post(url, b"{}", {})


def test_refuses_a_name_that_resolves_to_loopback():
    with pytest.raises(http.DeliveryRefused, match="loopback"):
        http.post("http://localhost:9/hook", b"{}", {})


@pytest.mark.parametrize("url", [
    "ftp://example.com/", "file:///etc/passwd", "http://user:pass@example.com/", "http://user@example.com/",
    "http:///nohost", "gopher://example.com/", "http://exa mple.com/", "",
])
def test_refuses_urls_of_the_wrong_shape(url):
    with pytest.raises(http.DeliveryRefused):
        http.parse_url(url)


def test_public_address_is_allowed():
    assert http.address_refusal(ipaddress.ip_address("93.184.216.34"), []) is None


def test_allowed_networks_let_chosen_private_addresses_through():
    assert http.address_refusal(ipaddress.ip_address("10.1.2.3"), http.parse_networks(["10.0.0.0/8"])) is None
    assert http.address_refusal(ipaddress.ip_address("10.1.2.3"), LOOPBACK) is not None


def test_delivers_to_loopback_when_it_is_allowed(receiver):
    response = http.post(receiver.url("/x?y=1"), b'{"a":1}', {"X-Test": "yes"}, allowed_networks=LOOPBACK)
    assert response.status == 200
    [request] = receiver.requests
    assert request.path == "/x?y=1" and request.body == b'{"a":1}'
    assert request.headers["X-Test"] == "yes"
    assert request.headers["Host"] == f"127.0.0.1:{receiver.port}"


def test_refused_address_is_never_contacted(receiver):
    with pytest.raises(http.DeliveryRefused):
        http.post(receiver.url(), b"{}", {})
    assert receiver.requests == []


def test_redirects_are_not_followed(receiver):
    receiver.answers.append(Answer(status=302, headers={"Location": receiver.url("/elsewhere")}))
    response = http.post(receiver.url("/start"), b"{}", {}, allowed_networks=LOOPBACK)
    assert response.status == 302
    assert [r.path for r in receiver.requests] == ["/start"]


def test_response_read_is_capped(receiver):
    receiver.answers.append(Answer(status=200, body=b"x" * (http.MAX_RESPONSE_BYTES * 4)))
    response = http.post(receiver.url(), b"{}", {}, allowed_networks=LOOPBACK)
    assert len(response.body) == http.MAX_RESPONSE_BYTES
    assert response.truncated


def test_connection_refused_is_a_failure_worth_retrying():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(http.DeliveryFailed):
        http.post(f"http://127.0.0.1:{port}/", b"{}", {}, allowed_networks=LOOPBACK)


def test_host_header_keeps_the_name_while_connecting_to_the_checked_address(receiver):
    response = http.post(f"http://localhost:{receiver.port}/named", b"{}", {}, allowed_networks=LOOPBACK)
    assert response.address == "127.0.0.1"
    assert receiver.requests[0].headers["Host"] == f"localhost:{receiver.port}"


def test_a_batch_reuses_its_connection(receiver):
    with http.Connections(size=1) as connections:
        for n in range(3):
            http.post(receiver.url(f"/{n}"), b"{}", {}, allowed_networks=LOOPBACK, connections=connections)
    assert [r.path for r in receiver.requests] == ["/0", "/1", "/2"]
    assert len({r.client for r in receiver.requests}) == 1


def test_a_batch_still_checks_every_address(receiver):
    with http.Connections(size=1) as connections:
        http.post(receiver.url(), b"{}", {}, allowed_networks=LOOPBACK, connections=connections)
        with pytest.raises(http.DeliveryRefused, match="loopback"):
            http.post(receiver.url(), b"{}", {}, connections=connections)
    assert len(receiver.requests) == 1


def test_a_connection_left_idle_is_not_reused(monkeypatch, receiver):
    monkeypatch.setattr(http, "IDLE_REUSE_SECONDS", 0.0)
    with http.Connections(size=1) as connections:
        for n in range(2):
            time.sleep(0.01)
            http.post(receiver.url(f"/{n}"), b"{}", {}, allowed_networks=LOOPBACK, connections=connections)
    assert len({r.client for r in receiver.requests}) == 2


def test_a_connection_whose_response_was_cut_short_is_not_reused(receiver):
    receiver.answers.append(Answer(status=200, body=b"x" * (http.MAX_RESPONSE_BYTES * 4)))
    with http.Connections(size=1) as connections:
        first = http.post(receiver.url("/big"), b"{}", {}, allowed_networks=LOOPBACK, connections=connections)
        second = http.post(receiver.url("/next"), b"{}", {}, allowed_networks=LOOPBACK, connections=connections)
    assert first.truncated and second.status == 200 and second.body == b"ok"
    assert receiver.requests[0].client != receiver.requests[1].client


@pytest.mark.skipif(http.QUICKACK is None, reason="TCP_QUICKACK is Linux only")
def test_a_kept_connection_is_not_slowed_by_delayed_acks(receiver):
    """The receiver writes its headers and its body apart, without TCP_NODELAY: were the client to
    delay its ACK (as a kept-alive connection does), each answer would wait 40 ms for it."""
    with http.Connections(size=1) as connections:
        http.post(receiver.url(), b"{}", {}, allowed_networks=LOOPBACK, connections=connections)
        started = time.monotonic()
        for _ in range(20):
            http.post(receiver.url(), b"{}", {}, allowed_networks=LOOPBACK, connections=connections)
        elapsed = time.monotonic() - started
    assert len({r.client for r in receiver.requests}) == 1
    assert elapsed < 20 * 0.040 * 0.75, f"20 requests took {elapsed:.3f} s"
