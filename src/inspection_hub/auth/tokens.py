"""Bearer tokens: random, shown once, stored as an HMAC-SHA256 with the server's pepper."""

from __future__ import annotations

import hmac
import secrets

TOKEN_PREFIX = "ih_"


def new_token() -> str:
    """A fresh random bearer token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str, pepper: str) -> str:
    """The keyed hash stored in place of the token (HMAC-SHA256, hex).

    ``hmac.digest`` is the one-shot OpenSSL call: the same value as
    ``hmac.new(pepper, token, sha256).hexdigest()`` at a fraction of its cost, which every
    request pays (tests/foundation/test_tokens.py pins the equality).
    """
    return hmac.digest(pepper.encode(), token.encode(), "sha256").hex()
