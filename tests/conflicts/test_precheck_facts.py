"""`precheck_facts` (migration 0012) returns what `conflict_facts` returns for a pre-check.

The submission reads the pre-check's facts through the lean, inlinable `precheck_facts`; the
detector and older readers use `conflict_facts`. The two must agree row for row on every
enterprise shape: history inside and outside the bounds, several agencies, matters and
inspectors, pending, emergency and decided requests, a risk-class history, and none at all.
"""

from __future__ import annotations

from datetime import date

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.config import Settings
from inspection_hub.conflicts.facts import submission_bounds
from tests.conflicts.helpers import Headers, add_enterprise, add_inspector, schedule

SM = async_sessionmaker[AsyncSession]

_LEAN = "SELECT * FROM precheck_facts(:u, :since, :until, :ends)"
_FULL = (
    "SELECT * FROM conflict_facts(:u, :since, :until, :ends, true, '{}'::bigint[], false, "
    "'{}'::bigint[], NULL::date, NULL::text, NULL::text)"
)
_REQUEST = """
INSERT INTO check_request (enterprise_uscc, agency_code, requester_id, requester_name, matters,
                           basis, reason, window_start, window_end, emergency, status,
                           policy_version, decision_due_at, expires_at)
VALUES (:u, :agency, :who, '调度员', CAST(:matters AS varchar[]), 'complaint', '群众投诉',
        :start, :end, :emergency, :status, 'test', now(), now())
"""


async def test_lean_facts_equal_the_full_loader_for_a_pre_check(
    client: httpx.AsyncClient,
    admin: Headers,
    two_agencies: tuple[str, str],
    sessionmaker: SM,
    settings: Settings,
) -> None:
    busy = await add_enterprise(client, admin, 21, risk_class="B")
    quiet = await add_enterprise(client, admin, 22)
    p1 = await add_inspector(client, admin, "SCJG", "CERT-21")
    p2 = await add_inspector(client, admin, "YJGL", "CERT-22")
    await schedule(
        sessionmaker, settings, busy, "SCJG", ["SCJG-001"], date(2026, 3, 2), date(2026, 3, 4),
        inspectors=[p1],
    )  # fmt: skip
    await schedule(
        sessionmaker, settings, busy, "YJGL", ["YJGL-001"], date(2026, 12, 14),
        date(2026, 12, 18), inspectors=[p2],
    )  # fmt: skip
    await schedule(
        sessionmaker, settings, busy, "SCJG", ["SCJG-001"], date(2027, 6, 1), date(2027, 6, 3)
    )
    await schedule(  # long before any bounds below reach
        sessionmaker, settings, busy, "SCJG", ["SCJG-001"], date(2020, 5, 1), date(2020, 5, 2)
    )
    async with sessionmaker() as s, s.begin():
        who = (await s.execute(text("SELECT min(id) FROM user_account"))).scalar_one()
        for agency, matters, start, end, emergency, status in (
            ("SCJG", ["SCJG-001"], date(2026, 12, 20), date(2026, 12, 24), False, "pending"),
            ("YJGL", ["YJGL-001"], date(2027, 1, 5), date(2027, 1, 9), False, "pending"),
            ("SCJG", ["SCJG-001"], date(2026, 12, 21), date(2026, 12, 22), True, "pending"),
            ("SCJG", ["SCJG-001"], date(2026, 12, 1), date(2026, 12, 5), False, "rejected"),
        ):
            await s.execute(
                text(_REQUEST),
                {
                    "u": busy, "agency": agency, "who": who, "matters": matters,
                    "start": start, "end": end, "emergency": emergency, "status": status,
                },
            )  # fmt: skip
        await s.execute(
            text(
                "INSERT INTO enterprise_risk_class (enterprise_uscc, valid_from, risk_class) "
                "VALUES (:u, DATE '2026-07-01', 'A')"
            ),
            {"u": busy},
        )
    compared = 0
    async with sessionmaker() as s:
        for uscc in (busy, quiet, "91350100M000100Y43"):
            for year in (2025, 2026, 2027, 2028):
                since, until, ends = submission_bounds(year)
                params = {"u": uscc, "since": since, "until": until, "ends": ends}
                lean = (await s.execute(text(_LEAN), params)).mappings().all()
                full = (await s.execute(text(_FULL), params)).mappings().all()
                assert [dict(r) for r in lean] == [dict(r) for r in full], (uscc, year)
                compared += len(full)
        params = {"u": busy, "since": date(2026, 1, 1), "until": date(2026, 12, 31)}
        params["ends"] = date(2026, 6, 1)
        lean_row = (await s.execute(text(_LEAN), params)).mappings().one()
    assert compared == 8  # two registered enterprises, four years each; the unknown one: none
    # the bounds do select: of the busy enterprise's four inspections, one lies in these
    assert lean_row["history"].count('"id"') == 1
    assert lean_row["requests"].count('"id"') == 1  # the pending, non-emergency one of 2026
    assert list(lean_row["classes"]) == ["B", "A"]
