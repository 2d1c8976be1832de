"""The token signing key: made once, private, shared by processes, announced by kid and x5c."""

import base64
import hashlib
import re
import stat
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from oci.scopes import parse_scopes
from registry import tokens
from repositories.permissions import Actor

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

KID_RE = re.compile(r"([A-Z2-7]{4}:){11}[A-Z2-7]{4}")


@pytest.fixture
def keys_dir(tmp_path, settings):
    settings.KEYS_DIR = tmp_path / "keys"
    yield settings.KEYS_DIR
    tokens._signing_keys.pop(str(settings.KEYS_DIR), None)


def spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_kid_is_twelve_groups_of_four_base32_characters(keys_dir):
    assert KID_RE.fullmatch(tokens.get_signing_key().kid)


def test_kid_is_the_libtrust_fingerprint(keys_dir):
    key = tokens.get_signing_key()
    expected = base64.b32encode(hashlib.sha256(spki(key.public_key)).digest()[:30]).decode()
    assert key.kid.replace(":", "") == expected


def test_key_file_is_private(keys_dir):
    tokens.get_signing_key()
    assert stat.S_IMODE((keys_dir / "registry-token.key").stat().st_mode) == 0o600


def test_key_is_p256(keys_dir):
    tokens.get_signing_key()
    key = serialization.load_pem_private_key((keys_dir / "registry-token.key").read_bytes(), password=None)
    assert isinstance(key.curve, ec.SECP256R1)


def test_key_file_is_created_once_and_reused(keys_dir):
    first = tokens.get_signing_key()
    pem = (keys_dir / "registry-token.key").read_bytes()
    tokens._signing_keys.clear()  # as a new process would
    second = tokens.get_signing_key()
    assert second is not first
    assert second.kid == first.kid
    assert (keys_dir / "registry-token.key").read_bytes() == pem


def test_key_is_loaded_once_per_process(keys_dir):
    assert tokens.get_signing_key() is tokens.get_signing_key()


def test_concurrent_creators_agree(keys_dir):
    keys_dir.mkdir(parents=True)
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = list(pool.map(lambda _: tokens._load_or_create_private_key(keys_dir), range(16)))
    assert len({spki(key.public_key()) for key in keys}) == 1
    assert sorted(path.name for path in keys_dir.iterdir()) == ["registry-token.key"]


def test_certificate_matches_the_key(keys_dir):
    key = tokens.get_signing_key()
    certificate = x509.load_pem_x509_certificate((keys_dir / "registry-token.crt").read_bytes())
    assert spki(certificate.public_key()) == spki(key.public_key)


def test_stale_certificate_is_replaced(keys_dir):
    keys_dir.mkdir(parents=True)
    other = ec.generate_private_key(ec.SECP256R1())
    (keys_dir / "registry-token.crt").write_bytes(tokens._build_certificate(other))
    key = tokens.get_signing_key()
    certificate = x509.load_pem_x509_certificate((keys_dir / "registry-token.crt").read_bytes())
    assert spki(certificate.public_key()) == spki(key.public_key)


def test_token_headers(keys_dir):
    issued = tokens.issue_registry_token(actor=Actor(), scopes=parse_scopes([]))
    header = jwt.get_unverified_header(issued.token)
    key = tokens.get_signing_key()
    assert header["alg"] == "ES256" and header["typ"] == "JWT" and header["kid"] == key.kid
    certificate = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    assert spki(certificate.public_key()) == spki(key.public_key)


def test_token_verifies_with_the_x5c_certificate(keys_dir):
    issued = tokens.issue_registry_token(actor=Actor(), scopes=parse_scopes([]))
    certificate = x509.load_der_x509_certificate(base64.b64decode(jwt.get_unverified_header(issued.token)["x5c"][0]))
    claims = jwt.decode(issued.token, certificate.public_key(), algorithms=["ES256"],
                        audience=tokens.settings.REGISTRY_SERVICE)
    assert claims["access"] == []


def test_a_key_that_is_not_p256_is_refused(keys_dir):
    from cryptography.hazmat.primitives.asymmetric import rsa
    from django.core.exceptions import ImproperlyConfigured

    keys_dir.mkdir(parents=True)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (keys_dir / "registry-token.key").write_bytes(rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ImproperlyConfigured):
        tokens.get_signing_key()
