"""lib/slow_clients.py's pure parts: which address a stalled request counts against, and the cap.
The worker itself is tested under a real gunicorn in tests/e2e/test_slow_clients.py."""

import pytest

from lib.slow_clients import StallCounter, _host


@pytest.mark.parametrize(("addr", "counted_as"), [
    (("203.0.113.7", 50000), "203.0.113.7"),
    (("2001:db8:1:2:3:4:5:6", 50000, 0, 0), "2001:db8:1:2::/64"),
    (("::ffff:203.0.113.7", 50000, 0, 0), "203.0.113.7"),
    ("", ""),
])
def test_a_client_is_counted_by_its_address_and_ipv6_by_its_slash_64(addr, counted_as):
    assert _host(addr) == counted_as


def test_two_ipv6_addresses_of_one_slash_64_share_a_count():
    assert _host(("2001:db8::1", 1, 0, 0)) == _host(("2001:db8::ffff:1", 1, 0, 0))


def test_the_cap_refuses_one_more_stalled_request_of_the_same_address_only():
    stalls = StallCounter(cap=2)
    assert stalls.enter("a") and stalls.enter("a")
    assert not stalls.enter("a")
    assert stalls.enter("b")
    stalls.leave("a")
    assert stalls.enter("a")


def test_no_cap_behind_a_proxy():
    stalls = StallCounter(cap=0)
    assert all(stalls.enter("proxy") for _ in range(1000))


def test_a_count_that_drops_to_zero_is_forgotten():
    stalls = StallCounter(cap=1)
    stalls.enter("a")
    stalls.leave("a")
    assert "a" not in stalls.by_address
