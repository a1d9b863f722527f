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

    @classmethod
    def from_keys(cls, keys: tuple[str, ...], blind_key: bytes) -> Keyring:
        return cls(MultiFernet([Fernet(k.encode()) for k in keys]), blind_key)

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
        return hmac.new(self.blind_key, value.encode(), hashlib.sha256).hexdigest()


_keyring: Keyring | None = None


def install_keyring(keyring: Keyring) -> None:
    global _keyring
    _keyring = keyring


def keyring() -> Keyring:
    if _keyring is None:
        raise KeyringNotConfigured("call install_keyring() (create_app does) before using PII")
    return _keyring
