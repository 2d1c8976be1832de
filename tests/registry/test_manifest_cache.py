"""Served manifests remembered per process (registry/manifest_cache.py): read once, never served after the
change that moved or removed them, in this process or another."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from registry import manifest_cache as cache_module
from registry.manifest_cache import FileGeneration, ManifestCache, RedisGeneration, manifest_cache
from registry.models import Tag
from registry.services.manifests import manifest_fetch, tag_delete
from repositories.services import repository_delete
from tests.hub.support import run_python
from tests.live import hub_environment
from tests.registry.helpers import image_manifest, push_blob, push_image, push_manifest, token_for

pytestmark = [pytest.mark.sqlite]


def push(client, user, tag: str = "v1", salt: str = "") -> tuple[str, bytes]:
    name = f"{user.username}/app"
    body, _ = push_image(client, name, token_for(client, user.username, f"repository:{name}:pull,push"),
                         tag=tag, salt=salt)
    return name, body


def fetch(user, reference: str = "v1"):
    return manifest_fetch(namespace=user.username, name="app", reference=reference)


def queries_of(call) -> tuple[object, int]:
    with CaptureQueriesContext(connection) as captured:
        result = call()
    return result, len(captured.captured_queries)


@pytest.mark.django_db
def test_a_served_manifest_is_read_from_the_database_once(client, alice):
    _, body = push(client, alice)
    first, first_queries = queries_of(lambda: fetch(alice))
    again, again_queries = queries_of(lambda: fetch(alice))
    assert (first_queries, again_queries) == (1, 0)
    assert bytes(first.content) == bytes(again.content) == body
    assert again is not first  # a fresh instance: nothing one request changes reaches the next


@pytest.mark.django_db
def test_a_tag_pushed_again_serves_the_new_manifest(client, alice):
    _, old = push(client, alice, salt="old")
    assert bytes(fetch(alice).content) == old
    _, new = push(client, alice, salt="new")
    assert new != old
    assert bytes(fetch(alice).content) == new


@pytest.mark.django_db
def test_a_deleted_tag_is_not_served(client, alice):
    push(client, alice)
    assert fetch(alice) is not None
    repository = Tag.objects.get(name="v1").repository
    tag_delete(repository=repository, tag_name="v1", user=alice)
    assert fetch(alice) is None


@pytest.mark.django_db
def test_a_deleted_repository_serves_nothing(client, alice):
    push(client, alice)
    digest = fetch(alice).digest
    assert fetch(alice, digest) is not None
    repository_delete(repository=Tag.objects.get(name="v1").repository, user=alice)
    assert fetch(alice) is None
    assert fetch(alice, digest) is None


@pytest.mark.django_db
def test_a_manifest_pushed_under_a_new_tag_is_found(client, alice):
    """Only hits are remembered: a tag that did not exist is asked for again."""
    name, _ = push(client, alice)
    assert fetch(alice, "v2") is None
    token = token_for(client, alice.username, f"repository:{name}:pull,push")
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    push_blob(client, name, config, token)
    push_manifest(client, name, "v2", image_manifest(config, []), token)
    assert fetch(alice, "v2") is not None


@pytest.mark.django_db(transaction=True)
def test_a_change_committed_by_another_process_is_seen(client, alice):
    """Another process on the same database (another gunicorn worker, the Celery worker, another node)
    deletes the tag: this process stops serving it (the generation file beside SQLite, Redis's key)."""
    push(client, alice)
    assert fetch(alice) is not None
    assert queries_of(lambda: fetch(alice))[1] == 0  # remembered
    code = ("import django; django.setup()\n"
            "from registry.models import Tag\n"
            f"print(Tag.objects.filter(repository__namespace__name={alice.username!r}, name='v1').delete()[0])\n")
    out = run_python(hub_environment(0), code).stdout.strip().splitlines()[-1]
    assert out == "1"
    assert fetch(alice) is None


@pytest.mark.django_db
def test_one_generation_per_transaction(client, alice):
    push(client, alice, tag="v1")
    push(client, alice, tag="v2")
    with transaction.atomic():
        for tag in Tag.objects.all():
            tag.save()
        Tag.objects.all().delete()
        waiting = [func for _, func, _ in connection.run_on_commit if func is cache_module._bump]
    assert waiting == [cache_module._bump]


@pytest.mark.django_db(transaction=True)
def test_a_change_in_a_savepoint_rolled_back_still_counts_the_ones_after_it(client, alice):
    """The bump waiting for the commit was registered inside a savepoint that was rolled back: the next
    change registers its own, or the committed deletion would go unannounced."""
    push(client, alice)
    before = manifest_cache.generation().current()
    with transaction.atomic():
        try:
            with transaction.atomic():
                Tag.objects.get(name="v1").save()
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        assert manifest_cache.generation().current() == before
        Tag.objects.filter(name="v1").delete()
    assert manifest_cache.generation().current() != before
    assert fetch(alice) is None


class FakeGeneration:
    def __init__(self) -> None:
        self.value: int | None = 1

    def current(self) -> int | None:
        return self.value

    def bump(self) -> None:
        self.value = (self.value or 0) + 1


def unit_cache(**kwargs) -> ManifestCache:
    cache = ManifestCache(**{"max_bytes": 1600, "max_age": 60.0, **kwargs})
    cache._generation = FakeGeneration()
    return cache


class Loads:
    """Reads through a cache of rows of one `size`-byte value, counting those that reach the "database"."""

    def __init__(self, cache: ManifestCache) -> None:
        self.cache, self.count = cache, 0

    def read(self, reference: str = "v1", size: int = 10) -> tuple | None:
        def load() -> tuple:
            self.count += 1
            return (b"x" * size,)
        return self.cache.fetch(("a", "b", reference), load, size_of=lambda row: len(row[0]))


def test_a_new_generation_reloads():
    cache = unit_cache()
    loads = Loads(cache)
    loads.read()
    loads.read()
    assert loads.count == 1
    cache._generation.bump()
    loads.read()
    assert loads.count == 2


def test_an_old_entry_is_read_again():
    loads = Loads(unit_cache(max_age=0.0))
    for _ in range(3):
        loads.read()
    assert loads.count == 3


def test_memory_stays_within_its_bytes():
    entry = 100 + cache_module.ENTRY_OVERHEAD_BYTES  # a 100-byte manifest and its objects
    cache = unit_cache(max_bytes=16 * entry)
    loads = Loads(cache)
    for number in range(50):
        loads.read(f"t{number}", 100)
    assert cache._bytes <= 16 * entry and len(cache) == 16
    too_big = cache.max_entry_bytes + 1  # over a sixteenth of the budget
    loads.read("big", too_big)
    loads.read("big", too_big)
    assert loads.count == 52  # too big to keep: read each time


def test_turned_off_it_always_reads():
    loads = Loads(unit_cache(max_bytes=0))
    for _ in range(2):
        loads.read()
    assert loads.count == 2


def test_redis_unreachable_reads_the_database_and_keeps_nothing():
    cache = unit_cache()
    cache._generation = RedisGeneration("redis://127.0.0.1:1/0")
    loads = Loads(cache)
    for _ in range(2):
        assert loads.read() == (b"x" * 10,)
    assert loads.count == 2 and len(cache) == 0


def test_a_generation_file_that_cannot_be_made_reads_the_database(tmp_path, caplog):
    cache = unit_cache()
    (tmp_path / "file").write_text("")
    cache._generation = FileGeneration(tmp_path / "file" / "generation")  # under a file: no such folder
    loads = Loads(cache)
    for _ in range(2):
        assert loads.read() == (b"x" * 10,)
    assert loads.count == 2 and len(cache) == 0
    assert caplog.text.count("manifest cache off") == 1


def test_the_generation_file_is_shared_by_whoever_maps_it(tmp_path):
    one, two = FileGeneration(tmp_path / "generation"), FileGeneration(tmp_path / "generation")
    before = two.current()
    assert one.current() == before
    one.bump()
    assert two.current() != before and two.current() == one.current()


def test_a_failed_bump_still_forgets_this_process_entries(caplog):
    class Unreachable(FakeGeneration):
        def bump(self) -> None:
            raise ConnectionError("redis down")

    cache = unit_cache()
    cache._generation = Unreachable()
    Loads(cache).read()
    cache.bump()
    assert len(cache) == 0
    assert "could not move the registry's generation on" in caplog.text


def test_the_process_cache_uses_the_settings():
    from django.conf import settings

    assert manifest_cache.max_bytes == settings.HUB_MANIFEST_CACHE_BYTES
    assert manifest_cache.max_age == settings.HUB_MANIFEST_CACHE_SECONDS
