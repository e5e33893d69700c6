"""Chinese working days: statutory holidays and adjusted working weekends honoured.

A *working day* is a day on which ``chinese_calendar.is_workday`` is true: Monday to Friday except
statutory holidays, plus the Saturdays and Sundays that the State Council declares working days
(调休). For years the installed ``chinese_calendar`` has no data for (it raises
``NotImplementedError``), Monday to Friday are working days and a warning is logged once per year.

Deadlines: ``add_working_days(start, n)`` is the **end of the n-th working day after the local
(Asia/Shanghai) calendar day of ``start``** - 23:59:59.999999 local time of that day, returned as
an aware datetime in the given zone. The submission day itself never counts, whether or not it is a
working day. ``n = 0`` gives the end of the submission day itself.
"""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar

__all__ = [
    "SHANGHAI",
    "add_working_days",
    "is_working_day",
    "local_date",
    "next_working_day",
    "working_days_between",
]

logger = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")

# Years the library has no data for (already warned about); also skips the library's exception.
_warned_years: set[int] = set()
_warned_lock = threading.Lock()


def _warn_once(year: int) -> None:
    with _warned_lock:
        if year in _warned_years:
            return
        _warned_years.add(year)
    logger.warning(
        "chinese_calendar has no holiday data for %d; counting Monday-Friday as working days", year
    )


def is_working_day(day: date) -> bool:
    """Whether ``day`` is a Chinese working day (weekends-only fallback for unknown years)."""
    if isinstance(day, datetime):
        day = day.date()
    return _is_working_day(day)


@lru_cache(maxsize=8192)
def _is_working_day(day: date) -> bool:
    # Memoised: every submission counts a few working days ahead, and chinese_calendar
    # validates and looks up each date afresh (4 % of a submission's CPU).
    if day.year in _warned_years:
        return day.weekday() < 5
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        _warn_once(day.year)
        return day.weekday() < 5


def next_working_day(day: date) -> date:
    """The first working day strictly after ``day``."""
    current = day + timedelta(days=1)
    while not is_working_day(current):
        current += timedelta(days=1)
    return current


def local_date(moment: datetime, tz: tzinfo = SHANGHAI) -> date:
    """The calendar day of an aware instant in ``tz``; naive datetimes are rejected."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: pass an aware datetime")
    return moment.astimezone(tz).date()


def add_working_days(start: datetime, n: int, tz: tzinfo = SHANGHAI) -> datetime:
    """End (23:59:59.999999 in ``tz``) of the n-th working day after the local day of ``start``."""
    if n < 0:
        raise ValueError("n must be >= 0")
    day = local_date(start, tz)
    for _ in range(n):
        day = next_working_day(day)
    return datetime.combine(day, time.max, tzinfo=tz)


def _as_day(value: date | datetime, tz: tzinfo) -> date:
    if isinstance(value, datetime):
        return local_date(value, tz)
    return value


def working_days_between(
    start: date | datetime, end: date | datetime, tz: tzinfo = SHANGHAI
) -> int:
    """Working days in the local days (start, end]; negative when ``end`` is before ``start``."""
    first = _as_day(start, tz)
    last = _as_day(end, tz)
    if last < first:
        return -working_days_between(last, first, tz)
    count = 0
    current = first + timedelta(days=1)
    while current <= last:
        if is_working_day(current):
            count += 1
        current += timedelta(days=1)
    return count
