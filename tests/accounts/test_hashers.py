"""The production password hasher: Argon2id at OWASP's cost, upgrading older Argon2 hashes."""

from django.contrib.auth.hashers import Argon2PasswordHasher, check_password, make_password

from accounts.hashers import Argon2idHasher


def test_hashes_are_argon2id_with_owasp_parameters():
    encoded = Argon2idHasher().encode("correct-horse-battery", Argon2idHasher().salt())
    assert encoded.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")


def test_a_hash_verifies_and_a_wrong_password_does_not():
    hasher = Argon2idHasher()
    encoded = hasher.encode("correct-horse-battery", hasher.salt())
    assert hasher.verify("correct-horse-battery", encoded)
    assert not hasher.verify("wrong", encoded)


def test_hashes_from_djangos_default_argon2_verify_and_are_marked_for_upgrade():
    old = Argon2PasswordHasher().encode("correct-horse-battery", Argon2PasswordHasher().salt())
    hasher = Argon2idHasher()
    assert hasher.verify("correct-horse-battery", old)
    assert hasher.must_update(old)


def test_site_settings_hash_with_it(settings):
    settings.PASSWORD_HASHERS = ["accounts.hashers.Argon2idHasher"]
    encoded = make_password("correct-horse-battery")
    assert "m=19456" in encoded and check_password("correct-horse-battery", encoded)
