"""Time helpers: one notion of "now" and of the district's local date."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    """The current instant, timezone-aware (UTC)."""
    return datetime.now(UTC)


def local_today() -> date:
    """Today's date in the district (Asia/Shanghai)."""
    return datetime.now(LOCAL_TZ).date()
