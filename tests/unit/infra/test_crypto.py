"""The keyring: the first key encrypts, every key decrypts, rotate re-encrypts under the first."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from app.security.crypto import DecryptionError, Keyring


@pytest.fixture
def old_key() -> str:
    """The key being retired."""
    return Fernet.generate_key().decode()


@pytest.fixture
def new_key() -> str:
    """The key now encrypting."""
    return Fernet.generate_key().decode()


def test_round_trip() -> None:
    ring = Keyring.from_keys((Fernet.generate_key().decode(),), b"k" * 32)

    token = ring.encrypt("+12025550100")

    assert "12025550100" not in token
    assert ring.decrypt(token) == "+12025550100"


def test_token_from_the_old_key_decrypts_when_it_is_second(old_key: str, new_key: str) -> None:
    token = Keyring.from_keys((old_key,), b"k" * 32).encrypt("secret body")

    rotated_ring = Keyring.from_keys((new_key, old_key), b"k" * 32)

    assert rotated_ring.decrypt(token) == "secret body"


def test_first_key_encrypts(old_key: str, new_key: str) -> None:
    token = Keyring.from_keys((new_key, old_key), b"k" * 32).encrypt("x")

    assert Keyring.from_keys((new_key,), b"k" * 32).decrypt(token) == "x"
    with pytest.raises(DecryptionError):
        Keyring.from_keys((old_key,), b"k" * 32).decrypt(token)


def test_rotate_re_encrypts_under_the_first_key(old_key: str, new_key: str) -> None:
    token = Keyring.from_keys((old_key,), b"k" * 32).encrypt("x")

    rotated = Keyring.from_keys((new_key, old_key), b"k" * 32).rotate(token)

    assert Keyring.from_keys((new_key,), b"k" * 32).decrypt(rotated) == "x"
    with pytest.raises(DecryptionError):
        Keyring.from_keys((old_key,), b"k" * 32).decrypt(rotated)


def test_unknown_key_raises_decryption_error(old_key: str, new_key: str) -> None:
    token = Keyring.from_keys((old_key,), b"k" * 32).encrypt("x")

    with pytest.raises(DecryptionError):
        Keyring.from_keys((new_key,), b"k" * 32).decrypt(token)


def test_blind_index_is_keyed_and_stable() -> None:
    key = Fernet.generate_key().decode()
    one = Keyring.from_keys((key,), b"a" * 32)
    other = Keyring.from_keys((key,), b"b" * 32)

    assert one.blind_index("+12025550100") == one.blind_index("+12025550100")
    assert one.blind_index("+12025550100") != one.blind_index("+12025550101")
    assert one.blind_index("+12025550100") != other.blind_index("+12025550100")
