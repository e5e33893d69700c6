"""Bearer tokens: random, shown once, stored as an HMAC-SHA256 with the server's pepper."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "ih_"


def new_token() -> str:
    """A fresh random bearer token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str, pepper: str) -> str:
    """The keyed hash stored in place of the token (HMAC-SHA256, hex; pinned by
    tests/foundation/test_tokens.py, since stored hashes depend on it)."""
    return hmac.new(pepper.encode(), token.encode(), hashlib.sha256).hexdigest()
