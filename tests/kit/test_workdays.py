"""Tests of Chinese working-day arithmetic."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspection_hub.kit import workdays
from inspection_hub.kit.workdays import (
    SHANGHAI,
    add_working_days,
    is_working_day,
    local_date,
    next_working_day,
    working_days_between,
)

END = time(23, 59, 59, 999999)


def sh(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


def end_of(y: int, m: int, d: int) -> datetime:
    return datetime.combine(date(y, m, d), END, tzinfo=SHANGHAI)


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    workdays._warned_years.clear()
    workdays._is_working_day.cache_clear()  # the answers are memoised per day


# --- what the library says about 2026 (verified against chinesecalendar 1.11) -----------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        # Spring Festival 2026: 15-23 Feb off, Sat 14 Feb and Sat 28 Feb working.
        (date(2026, 2, 13), True),
        (date(2026, 2, 14), True),  # adjusted working Saturday
        (date(2026, 2, 15), False),
        (date(2026, 2, 16), False),
        (date(2026, 2, 20), False),
        (date(2026, 2, 23), False),  # Monday, still holiday
        (date(2026, 2, 24), True),
        (date(2026, 2, 28), True),  # adjusted working Saturday
        (date(2026, 3, 1), False),
        # National Day 2026: 1-7 Oct off, Sun 20 Sep and Sat 10 Oct working.
        (date(2026, 9, 20), True),
        (date(2026, 9, 25), False),  # Mid-autumn
        (date(2026, 9, 30), True),
        (date(2026, 10, 1), False),
        (date(2026, 10, 7), False),
        (date(2026, 10, 8), True),
        (date(2026, 10, 10), True),  # adjusted working Saturday
        (date(2026, 10, 11), False),
        # New Year 2026: Sun 4 Jan working.
        (date(2026, 1, 1), False),
        (date(2026, 1, 2), False),
        (date(2026, 1, 4), True),
        # Ordinary weekend.
        (date(2026, 3, 7), False),
        (date(2026, 3, 9), True),
    ],
)
def test_is_working_day_2026(day: date, working: bool) -> None:
    assert is_working_day(day) is working


def test_is_working_day_accepts_datetime() -> None:
    assert is_working_day(datetime(2026, 2, 14, 9, 0)) is True


# --- deadlines --------------------------------------------------------------------------------


def test_add_three_working_days_ordinary_week() -> None:
    # Monday 9 March 2026 -> Tue 10, Wed 11, Thu 12.
    assert add_working_days(sh(2026, 3, 9), 3) == end_of(2026, 3, 12)


def test_add_working_days_skips_weekend() -> None:
    # Thursday 12 March -> Fri 13, Mon 16, Tue 17.
    assert add_working_days(sh(2026, 3, 12), 3) == end_of(2026, 3, 17)


def test_spring_festival_2026() -> None:
    # Submitted Thu 12 Feb: Fri 13, Sat 14 (adjusted working day), then holiday until Tue 24.
    assert add_working_days(sh(2026, 2, 12), 1) == end_of(2026, 2, 13)
    assert add_working_days(sh(2026, 2, 12), 2) == end_of(2026, 2, 14)
    assert add_working_days(sh(2026, 2, 12), 3) == end_of(2026, 2, 24)
    # Submitted on the adjusted working Saturday: next working days are 24, 25, 26 Feb.
    assert add_working_days(sh(2026, 2, 14), 3) == end_of(2026, 2, 26)
    # Submitted during the holiday: the holiday never counts.
    assert add_working_days(sh(2026, 2, 17), 3) == end_of(2026, 2, 26)
    # Thu 26 Feb: Fri 27, Sat 28 (adjusted), Mon 2 Mar.
    assert add_working_days(sh(2026, 2, 26), 3) == end_of(2026, 3, 2)


def test_national_day_2026() -> None:
    # Fri 18 Sep: Sat 19 off, Sun 20 working (adjusted), Mon 21, Tue 22.
    assert add_working_days(sh(2026, 9, 18), 3) == end_of(2026, 9, 22)
    # Wed 30 Sep: 1-7 Oct holiday, Thu 8, Fri 9, Sat 10 (adjusted working day).
    assert add_working_days(sh(2026, 9, 30), 3) == end_of(2026, 10, 10)
    assert add_working_days(sh(2026, 9, 30), 4) == end_of(2026, 10, 12)
    # Mid-autumn Fri 25 Sep is off: Thu 24 -> Mon 28, Tue 29, Wed 30.
    assert add_working_days(sh(2026, 9, 24), 3) == end_of(2026, 9, 30)


def test_deadline_is_end_of_local_day_and_converts_to_utc() -> None:
    deadline = add_working_days(sh(2026, 3, 9), 3)
    assert deadline.tzinfo is SHANGHAI
    assert deadline.astimezone(UTC) == datetime(2026, 3, 12, 15, 59, 59, 999999, tzinfo=UTC)


def test_submission_day_is_taken_in_shanghai_time() -> None:
    # 2026-03-08 17:00 UTC is Monday 9 March 01:00 in Shanghai.
    late_sunday_utc = datetime(2026, 3, 8, 17, 0, tzinfo=UTC)
    assert local_date(late_sunday_utc) == date(2026, 3, 9)
    assert add_working_days(late_sunday_utc, 1) == end_of(2026, 3, 10)
    # 2026-03-08 15:59 UTC is still Sunday in Shanghai.
    assert add_working_days(datetime(2026, 3, 8, 15, 59, tzinfo=UTC), 1) == end_of(2026, 3, 9)


def test_custom_timezone() -> None:
    utc_plus_zero = UTC
    start = datetime(2026, 3, 8, 17, 0, tzinfo=UTC)  # Sunday in UTC
    result = add_working_days(start, 1, tz=utc_plus_zero)
    assert result == datetime.combine(date(2026, 3, 9), END, tzinfo=utc_plus_zero)


def test_zero_days_is_end_of_submission_day() -> None:
    assert add_working_days(sh(2026, 2, 15, 8), 0) == end_of(2026, 2, 15)


def test_negative_and_naive_rejected() -> None:
    with pytest.raises(ValueError, match="n must be"):
        add_working_days(sh(2026, 3, 9), -1)
    with pytest.raises(ValueError, match="naive"):
        add_working_days(datetime(2026, 3, 9, 10, 0), 1)
    with pytest.raises(ValueError, match="naive"):
        working_days_between(datetime(2026, 3, 9), sh(2026, 3, 10))


def test_across_year_end() -> None:
    # Wed 30 Dec 2026 -> Thu 31 Dec; 2027 is not in the library: Fri 1 Jan 2027 counts (fallback).
    assert add_working_days(sh(2026, 12, 30), 1) == end_of(2026, 12, 31)
    assert add_working_days(sh(2026, 12, 30), 2) == end_of(2027, 1, 1)


# --- between ------------------------------------------------------------------------------------


def test_working_days_between() -> None:
    assert working_days_between(date(2026, 3, 9), date(2026, 3, 9)) == 0
    assert working_days_between(date(2026, 3, 9), date(2026, 3, 16)) == 5
    assert working_days_between(date(2026, 3, 16), date(2026, 3, 9)) == -5
    # Spring Festival: (12 Feb, 28 Feb] holds 13, 14, 24, 25, 26, 27, 28 Feb.
    assert working_days_between(date(2026, 2, 12), date(2026, 2, 28)) == 7
    # National Day: (30 Sep, 11 Oct] holds 8, 9, 10 Oct.
    assert working_days_between(date(2026, 9, 30), date(2026, 10, 11)) == 3
    # Whole year 2026 per chinesecalendar.
    expected = sum(1 for i in range(365) if is_working_day(date(2026, 1, 1) + timedelta(days=i)))
    assert working_days_between(date(2025, 12, 31), date(2026, 12, 31)) == expected


def test_working_days_between_datetimes_use_local_days() -> None:
    start = datetime(2026, 3, 8, 17, 0, tzinfo=UTC)  # Mon 9 March in Shanghai
    end = datetime(2026, 3, 10, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert working_days_between(start, end) == 1
    assert working_days_between(start, add_working_days(start, 3)) == 3


def test_next_working_day() -> None:
    assert next_working_day(date(2026, 2, 14)) == date(2026, 2, 24)
    assert next_working_day(date(2026, 9, 19)) == date(2026, 9, 20)
    assert next_working_day(date(2026, 9, 30)) == date(2026, 10, 8)


# --- fallback for unknown years -------------------------------------------------------------------


def test_unknown_year_falls_back_to_weekends(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="inspection_hub.kit.workdays"):
        # 1 Oct 2031 is a Wednesday: without data it is an ordinary working day.
        assert is_working_day(date(2031, 10, 1)) is True
        assert is_working_day(date(2031, 10, 4)) is False  # Saturday
        assert is_working_day(date(2031, 10, 5)) is False  # Sunday
        # Fri 3 Oct 2031 -> Mon 6, Tue 7, Wed 8.
        assert add_working_days(sh(2031, 10, 3), 3) == end_of(2031, 10, 8)
        assert working_days_between(date(2031, 1, 1), date(2031, 12, 31)) == 260
    warnings = [r for r in caplog.records if r.name == "inspection_hub.kit.workdays"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "2031" in warnings[0].getMessage()


def test_fallback_warns_once_per_year(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="inspection_hub.kit.workdays"):
        is_working_day(date(2031, 1, 6))
        is_working_day(date(2032, 1, 6))
        is_working_day(date(2031, 5, 6))
        is_working_day(date(2026, 5, 6))  # known year: no warning
    messages = sorted(r.getMessage() for r in caplog.records)
    assert len(messages) == 2
    assert "2031" in messages[0]
    assert "2032" in messages[1]


# --- properties ---------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2032, 12, 31), timezones=st.just(UTC)
)


@settings(deadline=None)
@given(instants, st.integers(min_value=0, max_value=40))
def test_between_inverts_add(start: datetime, n: int) -> None:
    deadline = add_working_days(start, n)
    assert working_days_between(start, deadline) == n
    assert deadline > start
    assert deadline.time() == END
    if n >= 1:
        assert is_working_day(deadline.date())


@settings(deadline=None)
@given(instants, st.integers(min_value=0, max_value=20), st.integers(min_value=0, max_value=20))
def test_add_is_additive(start: datetime, a: int, b: int) -> None:
    assert add_working_days(add_working_days(start, a), b) == add_working_days(start, a + b)


@settings(deadline=None)
@given(
    st.dates(min_value=date(2024, 1, 1), max_value=date(2032, 12, 31)),
    st.dates(min_value=date(2024, 1, 1), max_value=date(2032, 12, 31)),
)
def test_between_antisymmetric(a: date, b: date) -> None:
    assert working_days_between(a, b) == -working_days_between(b, a)
    assert abs(working_days_between(a, b)) <= abs((b - a).days)
