"""Prometheus metrics: who may read /metrics (a bearer token, never the query string), what is counted and
under which labels (URL patterns, never a repository or user name), and how gunicorn's workers and a Celery
worker's pool processes are summed (live: a real gunicorn with two workers and a real Celery worker)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from lib.metrics import HTTP, HttpRecorder, route_template
from tests.conftest import PASSWORD
from tests.e2e.clients import Account, Target
from tests.hub.support import run_django
from tests.hub.test_storages import bucket, s3_env  # noqa: F401 - the bucket fixture
from tests.live import free_port, start_hub, wait_until
from tests.webhooks.receiver import Answer, Receiver

TOKEN = "metrics-token-" + uuid.uuid4().hex
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0 when there are none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def local(name: str, **labels: str) -> float:
    """A counter of this (test) process (its pending request counts added first)."""
    HTTP.flush()
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- Access -----------------------------------------------------------------------------------------
@pytest.fixture
def metrics_on(settings):
    settings.HUB_METRICS_TOKEN = TOKEN
    return settings


@pytest.mark.django_db
def test_without_a_token_configured_metrics_are_a_404_like_any_unknown_page(client, settings):
    settings.HUB_METRICS_TOKEN = ""
    for headers in ({}, {"Authorization": "Bearer "}, BEARER):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 404
        assert b"wharf_" not in response.content
    unknown, metrics = client.get("/no-such-page"), client.get("/metrics")
    assert [t.name for t in metrics.templates] == [t.name for t in unknown.templates]


@pytest.mark.django_db
def test_only_the_bearer_token_in_the_header_opens_metrics(client, metrics_on):
    refused = [
        client.get("/metrics"),
        client.get("/metrics", headers={"Authorization": "Bearer wrong"}),
        client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"}),
        client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}),
        client.get("/metrics", headers={"Authorization": TOKEN}),
        client.get("/metrics", {"token": TOKEN}),
        client.get("/metrics", {"access_token": TOKEN}),
        client.get("/metrics", {"Authorization": f"Bearer {TOKEN}"}),
    ]
    for response in refused:
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert b"wharf_" not in response.content
    response = client.get("/metrics", headers=BEARER)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "wharf_http_requests_total" in response.content.decode()
    assert client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200


def test_the_token_may_come_from_a_file(tmp_path):
    from tests.hub.support import hub_env, settings_values

    secret = tmp_path / "token"
    secret.write_text(f"{TOKEN}\n")
    env = hub_env(tmp_path / "data", HUB_METRICS_TOKEN_FILE=str(secret))
    assert settings_values(env, "HUB_METRICS_TOKEN", "HUB_WORKER_METRICS_PORT", "HUB_WORKER_METRICS_BIND") == {
        "HUB_METRICS_TOKEN": TOKEN, "HUB_WORKER_METRICS_PORT": 0, "HUB_WORKER_METRICS_BIND": "127.0.0.1"}


# --- Labels -----------------------------------------------------------------------------------------
def test_url_patterns_become_route_templates():
    name = r"(?P<name>(?!(?:repositories|namespaces|users|orgs)/[^/]*/)[^/]*(?:/[^/]*)*?)"
    assert route_template(rf"^v2/{name}/manifests/(?P<reference>[^/]+)$") == "/v2/<name>/manifests/<reference>"
    assert route_template(rf"^v2/{name}/blobs/uploads/$") == "/v2/<name>/blobs/uploads/"
    assert route_template(r"^v2/users/login/?$") == "/v2/users/login/"
    assert route_template(r"^v2/repositories/(?P<namespace>[a-z0-9]+)/(?P<repository>[a-z0-9]+(?:(?:\.|_|__|-+)"
                          r"[a-z0-9]+)*)/tags/?$") == "/v2/repositories/<namespace>/<repository>/tags/"
    path_route = "r/<repo_ns:namespace>/<repo_name:name>/tags"
    assert route_template(path_route) == "/" + path_route
    assert route_template("v2/") == "/v2/"
    assert route_template("") == "/"


@pytest.mark.django_db
def test_requests_are_counted_by_route_template_never_by_name(client, metrics_on, alice, alice_private):
    secret_name = f"{alice.username}/{alice_private.name}"
    for _ in range(3):
        assert client.get(f"/v2/{secret_name}/manifests/latest").status_code == 401
    assert client.get(f"/v2/{alice.username}/nothing-here/tags/list").status_code == 401
    assert client.get(f"/u/{alice.username}").status_code in (200, 404)
    assert client.get("/no/such/page").status_code == 404
    text = client.get("/metrics", headers=BEARER).content.decode()
    assert value(text, "wharf_http_requests_total", route="/v2/<name>/manifests/<reference>", method="GET",
                 status="401") >= 3
    assert value(text, "wharf_http_request_duration_seconds_count", route="/v2/<name>/manifests/<reference>",
                 method="GET") >= 3
    assert value(text, "wharf_http_requests_total", route="unmatched", status="404") >= 1
    assert value(text, "wharf_http_requests_total", route="/u/<account_name:name>") >= 1
    assert alice.username not in text and alice_private.name not in text and "nothing-here" not in text


@pytest.mark.django_db
def test_429s_are_counted_by_door(client, settings, private_cache, alice):
    settings.REGISTRY_AUTH_MAX_FAILURES = 1
    before = local("wharf_rate_limited_total", door="registry_token")
    statuses = [client.get("/token", {"service": settings.REGISTRY_SERVICE},
                           HTTP_AUTHORIZATION="Basic " + _basic(alice.username, "wrong")).status_code
                for _ in range(3)]
    assert statuses[0] == 401 and statuses[-1] == 429
    assert local("wharf_rate_limited_total", door="registry_token") - before == statuses.count(429)


def _basic(user: str, password: str) -> str:
    import base64

    return base64.b64encode(f"{user}:{password}".encode()).decode()


# --- Bytes ----------------------------------------------------------------------------------------
def test_a_blob_get_redirected_to_s3_counts_the_blobs_size(data_dir, moto_endpoint, bucket):  # noqa: F811
    from tests.hub.test_registry_s3 import SCRIPT

    counts = ("\nfrom prometheus_client import REGISTRY\nprint(json.dumps([REGISTRY.get_sample_value("
              "'wharf_registry_bytes_pushed_total', {}), REGISTRY.get_sample_value("
              "'wharf_registry_bytes_pulled_total', {'delivery': 'redirected'}), REGISTRY.get_sample_value("
              "'wharf_registry_bytes_pulled_total', {'delivery': 'served'})]))\n")
    lines = run_django(s3_env(data_dir, moto_endpoint, bucket), SCRIPT + counts).stdout.strip().splitlines()
    result, (pushed, redirected, served) = json.loads(lines[-2]), json.loads(lines[-1])
    assert result["get"] == 307
    assert (pushed, redirected, served) == (result["size"], result["size"], 0)


# --- Webhooks and builds ----------------------------------------------------------------------------
@pytest.mark.django_db
def test_webhook_delivery_outcomes_are_counted(settings, alice, alice_repo):
    from webhooks import sending, services

    settings.HUB_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.HUB_WEBHOOK_BACKOFF_SECONDS = 0
    receiver = Receiver()
    try:
        hook = services.webhook_create(repository=alice_repo, name="ci", url=receiver.url(), user=alice,
                                       events=["push"])
        before = {o: local("wharf_webhook_deliveries_total", outcome=o) for o in ("success", "retry", "failure")}
        receiver.answers.extend([Answer(status=503), Answer(status=200)])
        services.webhook_ping(webhook=hook)
        sending.delivery_sweep()  # 503: tried again later
        sending.delivery_sweep()  # 200
        receiver.answers.append(Answer(status=400))
        services.webhook_ping(webhook=hook)
        sending.delivery_sweep()  # 400: not retried
    finally:
        receiver.close()
    after = {o: local("wharf_webhook_deliveries_total", outcome=o) for o in ("success", "retry", "failure")}
    assert {o: after[o] - before[o] for o in after} == {"success": 1, "retry": 1, "failure": 1}


@pytest.mark.django_db
def test_finished_builds_are_counted_with_their_duration(alice_repo, django_capture_on_commit_callbacks):
    from builds import constants
    from builds.executor import BuildOutcome
    from builds.lifecycle import build_finish
    from builds.models import Build

    build = Build.objects.create(repository=alice_repo, state=constants.BUILDING, source_url="/x",
                                 ref="refs/heads/main", tag="latest",
                                 started=timezone.now() - timedelta(seconds=42))
    count = local("wharf_builds_total", outcome=constants.FAILED)
    durations = local("wharf_build_duration_seconds_count", outcome=constants.FAILED)
    in_60s = local("wharf_build_duration_seconds_bucket", outcome=constants.FAILED, le="60.0")
    in_30s = local("wharf_build_duration_seconds_bucket", outcome=constants.FAILED, le="30.0")
    with django_capture_on_commit_callbacks(execute=True):
        build_finish(build=build, outcome=BuildOutcome(constants.FAILED, error="boom"))
    assert local("wharf_builds_total", outcome=constants.FAILED) == count + 1
    assert local("wharf_build_duration_seconds_count", outcome=constants.FAILED) == durations + 1
    assert local("wharf_build_duration_seconds_bucket", outcome=constants.FAILED, le="60.0") == in_60s + 1
    assert local("wharf_build_duration_seconds_bucket", outcome=constants.FAILED, le="30.0") == in_30s


# --- Live: gunicorn with two workers, and a Celery worker -------------------------------------------
@pytest.fixture(scope="module")
def metrics_hub(django_db_setup, django_db_blocker, artifacts_dir):
    worker_port = free_port()
    hub = start_hub(artifacts_dir, HUB_METRICS_TOKEN=TOKEN, HUB_WORKER_METRICS_PORT=str(worker_port),
                    HUB_WEB_WORKERS="2")
    hub.worker_metrics_url = f"http://127.0.0.1:{worker_port}/metrics"
    yield hub
    hub.stop()


def scrape(url: str) -> str:
    response = requests.get(url, headers=BEARER, timeout=10)
    assert response.status_code == 200, response.text[:500]
    return response.text


def _oci_manifest(config: bytes, layer: bytes) -> bytes:
    def descriptor(media_type: str, data: bytes) -> dict:
        return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}

    return json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
    }).encode()


def test_live_push_and_pull_are_counted_and_no_name_is_shown(metrics_hub, live_user):
    user = live_user()
    repo = f"{user.username}/hidden{uuid.uuid4().hex[:8]}"
    target = Target(kind="hub", host=metrics_hub.host, server=metrics_hub)
    api = target.api(Account(user.username, PASSWORD), repo)
    time.sleep(HttpRecorder.FLUSH_SECONDS + 0.2)  # the token request is added up
    before = scrape(f"{metrics_hub.url}/metrics")

    config, layer = b'{"architecture":"amd64","os":"linux"}', os.urandom(300_000)
    for blob in (config, layer):
        assert api.push_blob(blob).status_code == 201
    manifest = _oci_manifest(config, layer)
    tag = f"t{uuid.uuid4().hex[:8]}"
    put = api.request("PUT", api.url(f"manifests/{tag}"), data=manifest,
                      headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert put.status_code == 201, put.text
    got = api.request("GET", api.url(f"manifests/{tag}"),
                      headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert got.status_code == 200
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    assert api.get_blob(layer_digest).content == layer

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Each worker adds its requests to the metrics every second (lib/metrics.py, HttpRecorder).
    def settled() -> bool:
        nonlocal after
        after = scrape(f"{metrics_hub.url}/metrics")
        return moved("wharf_http_requests_total", route="/v2/<name>/blobs/<digest>", method="GET") == 1 and \
            moved("wharf_http_request_duration_seconds_count", route="/v2/<name>/blobs/uploads/<upload_id>") == 4

    after = ""
    wait_until(settled, timeout=10, interval=0.3, message="the push's and pull's requests counted")

    assert moved("wharf_registry_bytes_pushed_total") == len(config) + len(layer)
    assert moved("wharf_registry_bytes_pulled_total", delivery="served") == len(layer)
    assert moved("wharf_registry_pulls_total") == 1
    assert moved("wharf_http_requests_total", route="/v2/<name>/blobs/uploads/", method="POST", status="202") == 2
    assert moved("wharf_http_requests_total", route="/v2/<name>/blobs/uploads/<upload_id>", method="PATCH",
                 status="202") == 2
    assert moved("wharf_http_requests_total", route="/v2/<name>/manifests/<reference>", method="PUT",
                 status="201") == 1
    assert moved("wharf_http_requests_total", route="/v2/<name>/manifests/<reference>", method="GET",
                 status="200") == 1
    assert moved("wharf_http_requests_total", route="/v2/<name>/blobs/<digest>", method="GET", status="200") == 1
    assert value(after, "wharf_registry_uploads_in_progress") >= 0
    assert value(after, "process_resident_memory_bytes") > 0 and value(after, "wharf_processes") == 3
    for name in (user.username, repo, repo.split("/")[1], tag, layer_digest, layer_digest.split(":")[1]):
        assert f'"{name}"' not in after and f"/{name}" not in after, name
    assert user.username not in after and repo.split("/")[1] not in after and tag not in after


def test_live_two_gunicorn_workers_are_summed(metrics_hub):
    """Requests spread over both workers; whichever worker answers a scrape shows them all."""
    url = f"{metrics_hub.url}/v2/"
    folder = Path(metrics_hub.extra.get("HUB_DATA_DIR") or django_settings.DATA_DIR) / "metrics" / \
        f"web-{metrics_hub.port}"

    def per_worker() -> dict[str, float]:
        counts = {}
        for path in folder.glob("counter_*.db"):
            for family in MultiProcessCollector.merge([str(path)]):
                for sample in family.samples:
                    if sample.name == "wharf_http_requests_total" and sample.labels.get("route") == "/v2/":
                        counts[path.name] = counts.get(path.name, 0) + sample.value
        return counts

    time.sleep(HttpRecorder.FLUSH_SECONDS + 0.2)  # the earlier tests' requests are all added up
    before = value(scrape(f"{metrics_hub.url}/metrics"), "wharf_http_requests_total", route="/v2/")
    sent = 0
    for _ in range(10):  # new connections in parallel until both workers took some (and added them up)
        threads = [threading.Thread(target=lambda: requests.get(url, timeout=10)) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sent += len(threads)
        time.sleep(HttpRecorder.FLUSH_SECONDS + 0.2)
        if len([c for c in per_worker().values() if c > 0]) >= 2:
            break
    assert len([c for c in per_worker().values() if c > 0]) >= 2, per_worker()
    def total() -> float:
        return value(scrape(f"{metrics_hub.url}/metrics"), "wharf_http_requests_total", route="/v2/")

    wait_until(lambda: total() == before + sent, timeout=10, interval=0.3, message="every request counted")
    for _ in range(4):  # each scrape is answered by either worker: every one sums both
        assert total() == before + sent
    assert sum(per_worker().values()) == before + sent


def _broker(hub):
    from celery import Celery

    redis_url = hub.extra.get("REDIS_URL")
    if redis_url:
        return Celery("metrics-test", broker=redis_url)
    folder = Path(hub.extra["HUB_DATA_DIR"]) / "celery"
    app = Celery("metrics-test", broker="wharf-fs://")
    app.conf.broker_transport_options = {
        "data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
        "processing_folder": str(folder / "processing"), "malformed_folder": str(folder / "malformed"),
        "processed_folder": str(folder / "processed"), "control_folder": str(folder / "control"),
        "store_processed": False,
    }
    return app


def test_live_worker_serves_its_pool_counts_with_the_token(metrics_hub):
    url = metrics_hub.worker_metrics_url
    wait_until(lambda: requests.get(url, timeout=2).status_code == 401, timeout=30,
               message="the Celery worker's metrics endpoint")
    assert requests.get(url, params={"token": TOKEN}, timeout=5).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=5).status_code == 401
    assert requests.get(url.replace("/metrics", "/other"), headers=BEARER, timeout=5).status_code == 404
    text = scrape(url)
    assert value(text, "wharf_celery_queue_length", queue="celery") >= 0
    assert "wharf_celery_queue_length" in text and value(text, "wharf_processes") >= 3  # worker, 2 pool, beat
    failed_before = value(text, "wharf_celery_tasks_total", task="webhooks.deliver", outcome="failure")

    app = _broker(metrics_hub)
    for _ in range(2):  # no such delivery: the task raises, in one of the pool processes
        app.send_task("webhooks.deliver", args=["not-a-uuid"], queue="celery")
    wait_until(lambda: value(scrape(url), "wharf_celery_tasks_total", task="webhooks.deliver",
                             outcome="failure") == failed_before + 2, timeout=30,
               message="two failures of webhooks.deliver counted")
    # Periodic tasks sent by the worker's beat run in the pool too, and succeed.
    wait_until(lambda: value(scrape(url), "wharf_celery_tasks_total", outcome="success") > 0, timeout=30,
               message="a task success counted")
