"""Opaque cursors: base64url of a small JSON list of the last row's sort key."""

from __future__ import annotations

import base64
import json
from typing import Any

from inspection_hub.errors import ValidationFailed

MAX_LIMIT = 500


def encode_cursor(key: list[Any]) -> str:
    """Encode a sort key as an opaque cursor."""
    raw = json.dumps(key, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> list[Any] | None:
    """Decode a cursor, or raise a 422 naming the `cursor` parameter."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValidationFailed(
            "The cursor is not valid.", errors=[{"field": "cursor", "detail": "malformed"}]
        ) from exc
    if not isinstance(value, list):
        raise ValidationFailed(
            "The cursor is not valid.", errors=[{"field": "cursor", "detail": "malformed"}]
        )
    return value
