"""Field encryption (MultiFernet, so keys rotate) and the keyed blind index for lookups.

The keyring is process-wide: it is installed once at start-up by ``create_app``
from the settings, and the ``Encrypted`` column type uses it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class KeyringNotConfigured(RuntimeError):
    """Encrypted data was touched before the keyring was installed."""


class DecryptionError(ValueError):
    """A stored value could not be decrypted with any configured key."""


@dataclass(frozen=True)
class Keyring:
    """The encryption keys (first encrypts, all decrypt) and the blind index key."""

    fernet: MultiFernet
    blind_key: bytes
    # Each key on its own, newest first, and a short fingerprint of each (never the key).
    keys: tuple[Fernet, ...] = ()
    fingerprints: tuple[str, ...] = ()
    # The blind index's previous key, during a re-keying window (else None).
    blind_previous: bytes | None = None

    @classmethod
    def from_keys(
        cls, keys: tuple[str, ...], blind_key: bytes, blind_previous: bytes | None = None
    ) -> Keyring:
        fernets = tuple(Fernet(k.encode()) for k in keys)
        prints = tuple(hashlib.sha256(k.encode()).hexdigest()[:12] for k in keys)
        return cls(MultiFernet(list(fernets)), blind_key, fernets, prints, blind_previous)

    def key_of(self, token: str) -> int | None:
        """The position of the key that decrypts ``token`` (0: the newest), or None."""
        raw = token.encode()
        for position, key in enumerate(self.keys):
            try:
                key.decrypt(raw)
            except InvalidToken:
                continue
            return position
        return None

    def encrypt(self, plaintext: str) -> str:
        return self.fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self.fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise DecryptionError("no configured key decrypts this value") from None

    def rotate(self, token: str) -> str:
        """Re-encrypt a token under the first (current) key."""
        return self.fernet.rotate(token.encode()).decode()

    def blind_index(self, value: str) -> str:
        """The index new rows get (BLIND_INDEX_KEY's)."""
        return hmac.new(self.blind_key, value.encode(), hashlib.sha256).hexdigest()

    @property
    def blind_fingerprint(self) -> str:
        return hashlib.sha256(self.blind_key).hexdigest()[:12]

    def previous_blind_index(self, value: str) -> str | None:
        if self.blind_previous is None:
            return None
        return hmac.new(self.blind_previous, value.encode(), hashlib.sha256).hexdigest()

    def blind_indexes(self, value: str) -> list[str]:
        """Every index a stored row of ``value`` may have: during a re-keying window, the
        current key's and the previous key's; else just the current one."""
        previous = self.previous_blind_index(value)
        current = self.blind_index(value)
        return [current] if previous is None else [current, previous]


_keyring: Keyring | None = None


def install_keyring(keyring: Keyring) -> None:
    global _keyring
    _keyring = keyring


def keyring() -> Keyring:
    if _keyring is None:
        raise KeyringNotConfigured("call install_keyring() (create_app does) before using PII")
    return _keyring
