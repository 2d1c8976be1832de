"""repo_url: the same URLs reverse() gives, for every repository page, without a reverse() per row."""

import pytest
from django.urls import NoReverseMatch, reverse, set_script_prefix

from accounts.models import Namespace
from repositories.models import Repository
from repositories.templatetags.repo_format import repo_url
from repositories.urls import REPOSITORY_PAGES

PAGES = [page for suffix, _, page in REPOSITORY_PAGES if "<" not in suffix]


def repository(namespace: str, name: str, kind: str = Namespace.Kind.USER) -> Repository:
    return Repository(namespace=Namespace(name=namespace, kind=kind), name=name)


# Not `page`: that name is pytest-playwright's fixture, and shadowing it parametrizes these tests by
# browser, which makes pytest run the live-hub browser test among them (in the middle of the session).
@pytest.mark.parametrize("page_name", PAGES)
def test_personal_repository_pages(page_name):
    url = repo_url(repository("alice-2", "my.app__x"), page_name)
    assert url == reverse(f"repositories:{page_name}", kwargs={"namespace": "alice-2", "name": "my.app__x"})


@pytest.mark.parametrize("page_name", PAGES)
def test_official_image_pages(page_name):
    url = repo_url(repository("library", "ubuntu", Namespace.Kind.LIBRARY), page_name)
    assert url == reverse(f"repositories:official_{page_name}", kwargs={"name": "ubuntu"})


@pytest.mark.parametrize("tag", ["v1.0", "Latest_2-rc"])
def test_pages_with_a_tag(tag):
    assert repo_url(repository("alice", "app"), "tag_detail", tag=tag) == f"/r/alice/app/tags/{tag}"
    official = repository("library", "ubuntu", Namespace.Kind.LIBRARY)
    assert repo_url(official, "tag_delete", tag=tag) == f"/_/ubuntu/tags/{tag}/delete"


def test_a_name_the_converters_refuse_raises_as_reverse_does():
    with pytest.raises(NoReverseMatch):
        repo_url(repository("alice", "Not_Valid"))
    with pytest.raises(NoReverseMatch):
        repo_url(repository("a" * 31, "app"))
    with pytest.raises(NoReverseMatch):
        repo_url(repository("alice", "app"), "tag_detail", tag="-v1")


def test_script_prefix():
    set_script_prefix("/hub/")
    try:
        assert repo_url(repository("alice", "app"), "tags") == "/hub/r/alice/app/tags"
    finally:
        set_script_prefix("/")
    assert repo_url(repository("alice", "app"), "tags") == "/r/alice/app/tags"


def test_a_namespace_that_looks_like_the_stand_in():
    assert repo_url(repository("0wharfname0", "0wharfnamespace0")) == "/r/0wharfname0/0wharfnamespace0"
