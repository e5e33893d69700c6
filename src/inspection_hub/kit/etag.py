"""If-Match handling for versioned resources (the version number is the entity tag)."""

from __future__ import annotations

from inspection_hub.errors import ValidationFailed


def parse_if_match(value: str | None) -> int | None:
    """Accept `3`, `"3"` or `W/"3"`; None when absent; 422 when not a version."""
    if value is None or value.strip() == "*":
        return None
    raw = value.strip()
    if raw.startswith("W/"):
        raw = raw[2:]
    raw = raw.strip('"')
    if not raw.isdigit():
        raise ValidationFailed(
            'If-Match must carry the resource version, e.g. "3".',
            errors=[{"field": "If-Match", "location": "header", "detail": "not a version"}],
        )
    return int(raw)
