"""A hand-built year of findings and completed inspections whose monthly split is known.

Shared by the report tests and the dashboard's browser test. Times are UTC; the comments give
the Asia/Shanghai (UTC+8) time that decides the month.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.kit.synth import make_uscc

YEAR = 2026
ENTERPRISES = {"e1": 911, "e2": 912, "e3": 913}

# (id, agency, enterprise, status, window start, window end, visit date, completed at)
INSPECTIONS: list[tuple[int, str, str, str, str, str, str | None, datetime | None]] = [
    # 2026-01-31 23:30 in Shanghai: January.
    (1, "SCJG", "e1", "completed", "2026-01-05", "2026-01-31", "2026-01-31",
     datetime(2026, 1, 31, 15, 30, tzinfo=UTC)),
    # 2026-02-01 00:30 in Shanghai: February, though still January in UTC.
    (2, "SCJG", "e2", "completed", "2026-01-05", "2026-02-28", "2026-01-31",
     datetime(2026, 1, 31, 16, 30, tzinfo=UTC)),
    # No completion time (an imported record): the visit date decides, March.
    (3, "SCJG", "e3", "completed", "2026-03-01", "2026-03-31", "2026-03-15", None),
    (4, "YJGL", "e1", "completed", "2026-06-01", "2026-06-30", "2026-06-10",
     datetime(2026, 6, 10, 2, 0, tzinfo=UTC)),
    # A December inspection recorded as completed on 2027-01-03: the year's, so December.
    (5, "YJGL", "e2", "completed", "2026-12-01", "2026-12-31", "2026-12-30",
     datetime(2027, 1, 3, 1, 0, tzinfo=UTC)),
    (6, "SCJG", "e1", "scheduled", "2026-09-01", "2026-09-30", None, None),
    # Last year's inspection, completed at 2026-01-01 00:30 in Shanghai: 2025's, not January's.
    (7, "SCJG", "e1", "completed", "2025-12-01", "2025-12-31", "2025-12-31",
     datetime(2025, 12, 31, 16, 30, tzinfo=UTC)),
    (8, "YJGL", "e3", "scheduled", "2026-02-01", "2026-02-28", None, None),
    (9, "YJGL", "e3", "cancelled", "2026-04-01", "2026-04-30", None, None),
]  # fmt: skip

# (kind, inspection ids, recorded at)
FINDINGS: list[tuple[str, list[int], datetime]] = [
    # 2026-01-31 23:30 in Shanghai (15:30 UTC): January.
    ("trace_check_failed", [1], datetime(2026, 1, 31, 15, 30, tzinfo=UTC)),
    # 2026-02-01 00:30 in Shanghai: February.
    ("trace_check_failed", [2], datetime(2026, 1, 31, 16, 30, tzinfo=UTC)),
    ("survey_discrepancy", [3], datetime(2026, 3, 20, 8, 0, tzinfo=UTC)),
    # Names both agencies' inspections: once for SCJG and once for YJGL, as in the report.
    ("mergeable", [1, 4], datetime(2026, 5, 10, 8, 0, tzinfo=UTC)),
    # Recorded at the draw, before the year began: held in January.
    ("cap_exceeded", [8], datetime(2025, 12, 20, 8, 0, tzinfo=UTC)),
    # Recorded after the year ended, about a December inspection: held in December.
    ("survey_discrepancy", [5], datetime(2027, 1, 5, 8, 0, tzinfo=UTC)),
    # Names a 2025 and a 2026 inspection of SCJG: 2026 counts it once (through inspection 6).
    ("repeat", [6, 7], datetime(2026, 7, 1, 8, 0, tzinfo=UTC)),
    # About last year's inspection only: not this year's, though recorded in January.
    ("trace_check_failed", [7], datetime(2026, 1, 10, 8, 0, tzinfo=UTC)),
    # Two inspections of one agency: one finding for that agency.
    ("repeat", [1, 6], datetime(2026, 9, 2, 8, 0, tzinfo=UTC)),
    # About a cancelled inspection of the year: the report counts it, so do the months.
    ("exempt", [9], datetime(2026, 4, 30, 16, 30, tzinfo=UTC)),  # 05-01 00:30: May
]

KINDS = [
    "cap_exceeded",
    "exempt",
    "mergeable",
    "repeat",
    "survey_discrepancy",
    "trace_check_failed",
]


def _month(**counts: int) -> dict[str, int]:
    return {kind: counts.get(kind, 0) for kind in KINDS}


# Per month (1..12): findings by kind and inspections completed, over all agencies.
EXPECTED_ALL: dict[int, tuple[dict[str, int], int]] = {
    1: (_month(trace_check_failed=1, cap_exceeded=1), 1),
    2: (_month(trace_check_failed=1), 1),
    3: (_month(survey_discrepancy=1), 1),
    4: (_month(), 0),
    5: (_month(mergeable=2, exempt=1), 0),
    6: (_month(), 1),
    7: (_month(repeat=1), 0),
    8: (_month(), 0),
    9: (_month(repeat=1), 0),
    10: (_month(), 0),
    11: (_month(), 0),
    12: (_month(survey_discrepancy=1), 1),
}
# SCJG alone: (month, findings total, inspections completed) for the months that are not zero.
EXPECTED_SCJG = {1: (1, 1), 2: (1, 1), 3: (1, 1), 5: (1, 0), 7: (1, 0), 9: (1, 0)}


def usccs() -> dict[str, str]:
    """The data set's enterprise codes by key."""
    return {key: make_uscc("350102", n) for key, n in ENTERPRISES.items()}


async def build(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    """Write the enterprises, inspections and findings (agencies SCJG and YJGL must exist)."""
    codes = usccs()
    ent_of = {i[0]: codes[i[2]] for i in INSPECTIONS}
    async with sessionmaker() as s, s.begin():
        for key, uscc in codes.items():
            await s.execute(
                text(
                    "INSERT INTO enterprise (uscc, name, district_code, industry_code, "
                    "risk_class) VALUES (:u, :n, '350102', '5211', 'B')"
                ),
                {"u": uscc, "n": f"企业{key}"},
            )
        for iid, agency, ent, status, ws, we, visit, completed in INSPECTIONS:
            await s.execute(
                text(
                    "INSERT INTO inspection (enterprise_uscc, id, kind, status, agency_code, "
                    "year, window_start, window_end, visit_date, completed_at, outcome) "
                    "VALUES (:u, :id, 'planned', :s, :a, :y, :ws, :we, :vd, :ca, :o)"
                ),
                {
                    "u": codes[ent],
                    "id": iid,
                    "s": status,
                    "a": agency,
                    "y": int(ws[:4]),
                    "ws": date.fromisoformat(ws),
                    "we": date.fromisoformat(we),
                    "vd": date.fromisoformat(visit) if visit else None,
                    "ca": completed,
                    "o": "no_issue" if status == "completed" else None,
                },
            )
        for n, (kind, ids, recorded) in enumerate(FINDINGS):
            await s.execute(
                text(
                    "INSERT INTO conflict (enterprise_uscc, kind, finding_key, inspection_ids, "
                    "created_at, updated_at) VALUES (:u, :k, :key, CAST(:ids AS bigint[]), "
                    ":at, :at)"
                ),
                {"u": ent_of[ids[0]], "k": kind, "key": f"{kind}:{n}", "ids": ids, "at": recorded},
            )
    return codes


def month_row(items: list[dict[str, Any]], month: int) -> dict[str, Any]:
    """The item of one month (1..12) of a findings-by-month answer."""
    (row,) = (i for i in items if i["month"] == month)
    return row
