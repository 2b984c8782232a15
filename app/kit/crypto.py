"""Client passwords at rest: MultiFernet (the first key encrypts, every key decrypts).

The request fingerprint is an HMAC keyed from the same keys, so it tells bodies apart without
letting anyone who reads the database test password guesses against it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

log = structlog.get_logger(__name__)

_FINGERPRINT_CONTEXT = b"partnergate/provision-fingerprint/v1"


class PasswordUndecryptable(Exception):
    """No configured key decrypts a stored password (the key was rotated out)."""


class PasswordCipher:
    """Encrypts and decrypts client passwords and fingerprints request bodies."""

    def __init__(self, keys: Sequence[SecretStr]) -> None:
        raw = [key.get_secret_value().encode() for key in keys]
        if not raw:
            # Settings refuse an empty key list outside development; a development process
            # without keys still starts, but what it encrypts dies with it.
            log.warning("provisioning.crypto.ephemeral_key")
            raw = [Fernet.generate_key()]
        self._fernet = MultiFernet([Fernet(key) for key in raw])
        self._mac_keys = [
            hmac.new(base64.urlsafe_b64decode(key), _FINGERPRINT_CONTEXT, hashlib.sha256).digest()
            for key in raw
        ]

    def encrypt(self, password: str) -> str:
        """The ciphertext of `password` under the first key."""
        return self._fernet.encrypt(password.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """The password, decrypted with whichever configured key made it."""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise PasswordUndecryptable("no configured key decrypts the stored password") from exc

    def fingerprints(self, body: Mapping[str, Any]) -> list[str]:
        """The body's fingerprint under every key; the first is the one to store."""
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        data = canonical.encode()
        return [hmac.new(key, data, hashlib.sha256).hexdigest() for key in self._mac_keys]
