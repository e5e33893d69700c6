"""Signing secrets: generated in the `whsec_` format, stored encrypted (Fernet, HKDF key)."""

from __future__ import annotations

import base64
import functools
import secrets as _secrets

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh signing secret: `whsec_` + base64 of 32 random bytes (Standard Webhooks)."""
    return PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode()


@functools.lru_cache(maxsize=8)
def _fernet(master: str) -> Fernet:
    if not master:
        raise RuntimeError("session_secret is empty: cannot encrypt webhook secrets")
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"inspection-hub webhook secret"
    ).derive(master.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_secret(secret: str, master: str) -> str:
    """Encrypt a signing secret with a key derived from the service's session secret."""
    return _fernet(master).encrypt(secret.encode()).decode()


def decrypt_secret(token: str, master: str) -> str:
    """Decrypt a stored signing secret."""
    return _fernet(master).decrypt(token.encode()).decode()
