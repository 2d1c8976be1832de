"""Parsing the mirror settings (registry/mirror/config.py): shapes accepted, errors that name the
entry, and credentials that never show in a repr or an error message."""

import pytest

from registry.mirror.config import Mirror, parse_mirror_hosts, parse_mirror_readers, parse_mirrors


def test_mirrors_map_prefixes_to_upstreams():
    mirrors = parse_mirrors("dockerhub=https://registry-1.docker.io, ghcr=https://ghcr.io/ ,,")
    assert mirrors == {
        "dockerhub": Mirror(prefix="dockerhub", url="https://registry-1.docker.io", username=None, password=None),
        "ghcr": Mirror(prefix="ghcr", url="https://ghcr.io", username=None, password=None),
    }
    assert mirrors["dockerhub"].display == "docker.io"
    assert mirrors["ghcr"].display == "ghcr.io"
    assert parse_mirrors("") == {} and parse_mirrors("  ") == {}


def test_mirror_keeps_port_and_lowercases_host():
    mirror = parse_mirrors("local=http://Registry.Example:5000")["local"]
    assert mirror.url == "http://registry.example:5000"
    assert mirror.display == "registry.example:5000"
    assert parse_mirrors("six6=http://[::1]:5000")["six6"].url == "http://[::1]:5000"
    assert parse_mirrors("loop=http://127.0.0.1:5000")["loop"].display == "127.0.0.1:5000"


def test_credentials_are_split_out_percent_decoded_and_hidden():
    mirror = parse_mirrors("dockerhub=https://bob%40corp:s3cr%3At%2Cx@registry-1.docker.io")["dockerhub"]
    assert mirror.url == "https://registry-1.docker.io"
    assert (mirror.username, mirror.password) == ("bob@corp", "s3cr:t,x")
    assert "s3cr" not in repr(mirror) and "s3cr" not in str(mirror)
    assert mirror.has_credentials


@pytest.mark.parametrize("value, fragment", [
    ("dockerhub", "expected name=value"),
    ("dockerhub=", "expected name=value"),
    ("=https://x.io", "expected name=value"),
    ("Docker=https://x.io", "'Docker'"),
    ("abc=https://x.io", "'abc'"),
    ("my-hub=https://x.io", "'my-hub'"),
    ("library=https://x.io", "reserved"),
    ("dockerhub=ftp://x.io", "https://"),
    ("dockerhub=registry-1.docker.io", "https://"),
    ("dockerhub=https://x.io/v2/", "without a path"),
    ("dockerhub=https://x.io?a=b", "without a path"),
    ("dockerhub=https://", "no host"),
    ("dockerhub=https://x.io:99999", "not a valid URL"),
    ("dockerhub=https://ex_ample.io", "invalid host"),
    ("dockerhub=https://x.io,dockerhub=https://y.io", "twice"),
    ("dockerhub=https://bob@x.io", "user:password@"),
])
def test_bad_mirrors_raise_naming_the_entry(value, fragment):
    with pytest.raises(ValueError, match=r"HUB_MIRRORS|name=value") as info:
        parse_mirrors(value)
    assert fragment in str(info.value)


@pytest.mark.parametrize("value", [
    "dockerhub=https://bob:hunter2@x.io/path",
    "dockerhub=https://bob:hunter2@x.io:99999",
    "dockerhub=https://bob:hunter2@ex_ample.io",
    "https://bob:hunter2@x.io",
    "dockerhub=https://bob:hunter2@x.io,dockerhub=https://bob:hunter2@x.io",
])
def test_errors_never_echo_the_password(value):
    with pytest.raises(ValueError) as info:
        parse_mirrors(value)
    assert "hunter2" not in str(info.value)


def test_mirror_hosts_lowercase_and_drop_the_port():
    assert parse_mirror_hosts("Mirror.Example.COM:8443=dockerhub, other.example=ghcr1") == {
        "mirror.example.com": "dockerhub", "other.example": "ghcr1"}
    assert parse_mirror_hosts("[::1]:5000=dockerhub") == {"::1": "dockerhub"}
    assert parse_mirror_hosts("127.0.0.1=dockerhub") == {"127.0.0.1": "dockerhub"}
    assert parse_mirror_hosts("") == {}


@pytest.mark.parametrize("value, fragment", [
    ("mirror.example.com", "name=value"),
    ("mirror.example.com=", "name=value"),
    ("bad host=dockerhub", "not a host name"),
    ("mirror.example.com:http=dockerhub", "invalid port"),
    ("mirror.example.com=Docker", "'Docker'"),
    ("a.example=dockerhub,A.example:1=ghcr1", "twice"),
])
def test_bad_mirror_hosts(value, fragment):
    with pytest.raises(ValueError) as info:
        parse_mirror_hosts(value)
    assert fragment in str(info.value)


def test_mirror_readers_list_organizations_per_prefix():
    assert parse_mirror_readers("dockerhub=acme,opsteam") == {"dockerhub": ("acme", "opsteam")}
    assert parse_mirror_readers("dockerhub=acme,opsteam, ghcr1=tools ,acme") == {
        "dockerhub": ("acme", "opsteam"), "ghcr1": ("tools", "acme")}
    assert parse_mirror_readers("dockerhub=acme;ghcr1=tools") == {"dockerhub": ("acme",), "ghcr1": ("tools",)}
    assert parse_mirror_readers("dockerhub=acme,acme") == {"dockerhub": ("acme",)}
    assert parse_mirror_readers("") == {}


@pytest.mark.parametrize("value, fragment", [
    ("acme", "no mirror prefix"),
    ("dockerhub=", "organization name"),
    ("dockerhub=ops", "4–30"),
    ("dockerhub=Acme", "'Acme'"),
    ("dockerhub=acme,dockerhub=ops", "twice"),
    ("x=acme", "'x'"),
])
def test_bad_mirror_readers(value, fragment):
    with pytest.raises(ValueError) as info:
        parse_mirror_readers(value)
    assert fragment in str(info.value)
