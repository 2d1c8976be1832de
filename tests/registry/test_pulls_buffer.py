"""With Redis, a counted manifest GET adds to its process's buffer only (no round trip on the request); the
buffer reaches the Redis hash in one pipelined write, and a failed write keeps the counts for the next."""

import os

import pytest
import redis

from registry import pulls
from tests.registry.helpers import pull_push, push_image

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def redis_buffer(settings):
    url = os.environ.get("HUB_TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("no Redis in this environment (REDIS_URL unset)")
    settings.REDIS_URL = url
    settings.PULL_BUFFER_WRITE_SECONDS = 3600  # the background thread stays out of the way
    with pulls.local_buffer.lock:
        pulls.local_buffer.counts.clear()
    pulls._redis.cache_clear()
    pulls._redis().delete(pulls.REDIS_KEY, f"{pulls.REDIS_KEY}:flushing")
    yield pulls._redis()
    with pulls.local_buffer.lock:
        pulls.local_buffer.counts.clear()
    settings.REDIS_URL = url
    pulls._redis.cache_clear()
    pulls._redis().delete(pulls.REDIS_KEY, f"{pulls.REDIS_KEY}:flushing")
    pulls._redis.cache_clear()


@pytest.fixture
def pulled(client, alice, redis_buffer):
    name = f"{alice.username}/app"
    auth = pull_push(client, alice, name)
    push_image(client, name, auth["HTTP_AUTHORIZATION"][7:], tag="v1")
    for _ in range(3):
        assert client.get(f"/v2/{name}/manifests/v1", **auth).status_code == 200
    return name


def test_a_get_writes_nothing_to_redis_until_the_buffer_is_written(pulled, redis_buffer):
    assert redis_buffer.hlen(pulls.REDIS_KEY) == 0
    assert pulls.local_buffer.write() == 3
    assert sum(int(v) for v in redis_buffer.hgetall(pulls.REDIS_KEY).values()) == 3
    assert pulls.flush_pull_counters() == 3


def test_a_flush_takes_this_processs_buffer_first(pulled, alice):
    from repositories.models import Repository

    assert pulls.flush_pull_counters() == 3
    assert Repository.objects.get(namespace__name=alice.username, name="app").pull_count == 3
    assert pulls.flush_pull_counters() == 0


def test_a_failed_write_keeps_the_counts(pulled, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    pulls._redis.cache_clear()
    with pytest.raises(redis.exceptions.ConnectionError):
        pulls.local_buffer.write()
    assert sum(pulls.local_buffer.counts.values()) == 3
