"""Attempts, retries with backoff, no retry on 4xx, auto-disable: against a real receiver on loopback."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.webhooks.receiver import Receiver
from webhooks import payloads, sending, services
from webhooks.models import Delivery, Webhook

pytestmark = pytest.mark.django_db


def ping(hook):
    return services.webhook_ping(webhook=hook)


def test_success_records_status_duration_and_excerpt(loopback_allowed, receiver, make_hook):
    delivery = ping(make_hook(receiver.url()))
    receiver.answer(201, body=b"thanks")
    sending.delivery_sweep()
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.SUCCEEDED
    assert delivery.response_status == 201 and delivery.response_body == "thanks"
    assert delivery.attempts == 1 and delivery.duration_ms is not None and delivery.next_attempt_at is None


def test_request_carries_event_delivery_id_user_agent_and_custom_headers(loopback_allowed, receiver, make_hook):
    delivery = ping(make_hook(receiver.url(), headers={"Authorization": "Bearer abc"}))
    sending.delivery_sweep()
    [request] = receiver.requests
    assert request.headers["X-Hub-Event"] == "ping"
    assert request.headers["X-Hub-Delivery"] == str(delivery.pk)
    assert request.headers["User-Agent"] == "Wharf-Hookshot/1.0"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == "Bearer abc"
    assert "X-Hub-Signature-256" not in request.headers


def test_signature_verifies_with_the_secret(loopback_allowed, receiver, make_hook):
    ping(make_hook(receiver.url(), secret="a-long-shared-secret"))
    sending.delivery_sweep()
    [request] = receiver.requests
    assert payloads.verify("a-long-shared-secret", request.body, request.headers["X-Hub-Signature-256"])


def test_5xx_is_retried_then_succeeds(loopback_allowed, receiver, make_hook):
    delivery = ping(make_hook(receiver.url()))
    receiver.answer(500, 503)
    for _ in range(3):
        sending.delivery_sweep()
    delivery.refresh_from_db()
    assert [r.body for r in receiver.requests] == [delivery.body.encode()] * 3
    assert delivery.state == Delivery.State.SUCCEEDED and delivery.attempts == 3
    assert [entry["status"] for entry in delivery.attempt_log] == [500, 503, 200]


def test_retries_back_off_exponentially(settings, loopback_allowed, receiver, make_hook):
    settings.HUB_WEBHOOK_BACKOFF_SECONDS = 10
    delivery = ping(make_hook(receiver.url()))
    receiver.answer(500, 500)
    waits = []
    for _ in range(2):
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        sending.delivery_sweep()
        delivery.refresh_from_db()
        waits.append((delivery.next_attempt_at - delivery.last_attempt_at).total_seconds())
    assert waits[0] == pytest.approx(10, abs=1)
    assert waits[1] == pytest.approx(40, abs=1)
    assert sending.backoff_seconds(5) == 10 * 4**4


def test_gives_up_after_five_attempts(loopback_allowed, receiver, make_hook):
    receiver.default.status = 502
    delivery = ping(make_hook(receiver.url()))
    for _ in range(sending.MAX_ATTEMPTS + 2):
        sending.delivery_sweep()
    delivery.refresh_from_db()
    assert len(receiver.requests) == sending.MAX_ATTEMPTS
    assert delivery.state == Delivery.State.FAILED and "Gave up after 5 attempts" in delivery.error


def test_4xx_is_not_retried(loopback_allowed, receiver, make_hook):
    receiver.default.status = 404
    delivery = ping(make_hook(receiver.url()))
    sending.delivery_sweep()
    sending.delivery_sweep()
    delivery.refresh_from_db()
    assert len(receiver.requests) == 1
    assert delivery.state == Delivery.State.FAILED and delivery.response_status == 404


def test_network_error_is_retried(loopback_allowed, make_hook):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    delivery = ping(make_hook(f"http://127.0.0.1:{port}/"))
    sending.delivery_sweep()
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.PENDING and delivery.attempts == 1
    assert delivery.error.startswith("Network error")


def test_refused_private_address_is_reported_and_not_retried(settings, receiver, make_hook):
    settings.HUB_WEBHOOK_ALLOWED_NETWORKS = []
    delivery = ping(make_hook(receiver.url()))
    sending.delivery_sweep()
    delivery.refresh_from_db()
    assert receiver.requests == []
    assert delivery.state == Delivery.State.FAILED
    assert "loopback" in delivery.error


def test_webhook_is_disabled_after_consecutive_failures(settings, loopback_allowed, receiver, make_hook, repo,
                                                         alice):
    settings.HUB_WEBHOOK_DISABLE_AFTER = 2
    receiver.default.status = 410
    hook = make_hook(receiver.url())
    for _ in range(2):
        ping(hook)
        sending.delivery_sweep()
    hook.refresh_from_db()
    assert not hook.active and hook.consecutive_failures == 2
    assert "2 consecutive failed deliveries" in hook.disabled_reason and "410" in hook.disabled_reason


def test_disabled_webhook_stops_receiving(settings, loopback_allowed, receiver, make_hook, repo):
    settings.HUB_WEBHOOK_DISABLE_AFTER = 1
    receiver.default.status = 400
    hook = make_hook(receiver.url())
    ping(hook)
    sending.delivery_sweep()
    hook.refresh_from_db()
    assert not hook.active
    assert services.emit_event(repo, payloads.PUSH, {"tag": "x"}) == []
    sending.delivery_sweep()
    assert len(receiver.requests) == 1


def test_pending_delivery_of_a_disabled_webhook_is_cancelled(loopback_allowed, receiver, make_hook, repo):
    hook = make_hook(receiver.url())
    [delivery] = services.emit_event(repo, payloads.PUSH, {"tag": "x"})
    services.webhook_set_active(webhook=hook, active=False)
    sending.delivery_sweep()
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.CANCELLED and receiver.requests == []


def test_success_resets_the_failure_count(loopback_allowed, receiver, make_hook):
    hook = make_hook(receiver.url())
    receiver.answer(400)
    ping(hook)
    sending.delivery_sweep()
    ping(hook)
    sending.delivery_sweep()
    hook.refresh_from_db()
    assert hook.consecutive_failures == 0 and hook.active


def test_redeliver_sends_the_same_body_again(loopback_allowed, receiver, make_hook, repo):
    make_hook(receiver.url(), secret="another-long-secret")
    [delivery] = services.emit_event(repo, payloads.PUSH, {"tag": "x"})
    sending.delivery_sweep()
    copy = services.delivery_redeliver(delivery=delivery)
    sending.delivery_sweep()
    first, second = receiver.requests
    assert first.body == second.body
    assert second.headers["X-Hub-Delivery"] == str(copy.pk) != first.headers["X-Hub-Delivery"]
    assert payloads.verify("another-long-secret", second.body, second.headers["X-Hub-Signature-256"])
    assert json.loads(second.body)["push_data"] == {"tag": "x"}


def test_a_claimed_delivery_is_not_sent_twice(loopback_allowed, receiver, make_hook):
    delivery = ping(make_hook(receiver.url()))
    sending.delivery_attempt(delivery_id=delivery.pk)
    assert sending.delivery_attempt(delivery_id=delivery.pk) is None
    assert len(receiver.requests) == 1


def test_an_events_deliveries_are_sent_together_and_each_recorded(loopback_allowed, make_hook, repo):
    receivers = {status: Receiver() for status in (200, 404, 500)}
    try:
        hooks = {}
        for status, server in receivers.items():
            server.default.status = status
            hooks[status] = make_hook(server.url(), name=f"answers {status}")
        deliveries = services.emit_event(repo, payloads.PUSH, {"tag": "x"})
        sending.delivery_attempts(delivery_ids=[d.pk for d in deliveries])
        by_hook = {d.webhook_id: d for d in Delivery.objects.all()}
        ok, gone, broken = (by_hook[hooks[status].pk] for status in (200, 404, 500))
        assert ok.state == Delivery.State.SUCCEEDED and ok.response_status == 200
        assert gone.state == Delivery.State.FAILED and gone.response_status == 404
        assert broken.state == Delivery.State.PENDING and broken.attempts == 1 and broken.next_attempt_at
        assert broken.error == "The receiver answered 500."
        assert [len(server.requests) for server in receivers.values()] == [1, 1, 1]
        assert [Webhook.objects.get(pk=hooks[status].pk).consecutive_failures for status in (200, 404)] == [0, 1]
    finally:
        for server in receivers.values():
            server.close()


@pytest.mark.parametrize(("answers", "failures"), [((200, 400), 1), ((400, 200), 0)])
def test_a_batch_counts_one_webhooks_outcomes_in_the_order_they_came(monkeypatch, loopback_allowed, receiver,
                                                                    make_hook, answers, failures):
    monkeypatch.setattr(sending, "BATCH_THREADS", 1)
    hook = make_hook(receiver.url())
    receiver.answer(*answers)
    pings = [ping(hook), ping(hook)]
    sending.delivery_attempts(delivery_ids=[d.pk for d in pings])
    hook.refresh_from_db()
    assert len(receiver.requests) == 2 and hook.consecutive_failures == failures


def test_a_batch_lease_covers_every_round_of_attempts(loopback_allowed, receiver, make_hook):
    delivery = ping(make_hook(receiver.url()))
    now = timezone.now()
    [claimed] = sending._claim_many([delivery.pk], now, rounds=3)
    assert claimed.next_attempt_at == now + timedelta(seconds=3 * sending.CLAIM_LEASE_SECONDS)
    assert sending._claim_many([delivery.pk], now) == []
