"""Trace checks (平台留痕核查), rule by rule; re-running adds no findings."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import text

from inspection_hub.surveys.trace import run_trace_checks
from tests.surveys import factories

VISIT = date(2026, 3, 10)


async def failures(sessionmaker: Any) -> list[tuple[str, int, str]]:
    async with sessionmaker() as s:
        rows = await s.execute(
            text(
                "SELECT kind, inspection_ids[1], detail->>'rule' FROM conflict "
                "ORDER BY inspection_ids[1], kind, detail->>'rule'"
            )
        )
        return [tuple(r) for r in rows]


async def test_each_rule_fails_its_own_inspection_and_rerun_adds_nothing(
    sessionmaker: Any, settings: Any, two_agencies: Any
) -> None:
    async with sessionmaker() as s, s.begin():
        good_a = await factories.inspector(s, "SCJG", date(2030, 1, 1))
        good_b = await factories.inspector(s, "SCJG", date(2030, 1, 1))
        lapsed = await factories.inspector(s, "SCJG", date(2026, 3, 9))
        two = [(good_a, True), (good_b, True)]

        async def make(**kw: Any) -> int:
            uscc = await factories.enterprise(s)
            return await factories.completed_inspection(
                s, settings, uscc=uscc, **{"inspectors": two, **kw}
            )

        clean = await make()
        one_present = await make(inspectors=[(good_a, True), (good_b, False)])
        cert_lapsed = await make(inspectors=[(good_a, True), (lapsed, True)])
        outside = await make(visit_date=date(2026, 4, 2))
        unapproved = await make(check_request_id=None)

        async def with_request(**kw: Any) -> int:
            uscc = await factories.enterprise(s)
            request = await factories.check_request(s, uscc=uscc, **kw)
            return await factories.completed_inspection(
                s, settings, uscc=uscc, inspectors=two, check_request_id=request
            )

        rejected = await with_request(status="rejected")
        approved_after_visit = await with_request(
            decided_at=datetime(2026, 3, 10, 16, 30, tzinfo=UTC)  # 3-11 00:30 local
        )
        approved_on_visit_day = await with_request(
            decided_at=datetime(2026, 3, 10, 1, 0, tzinfo=UTC)  # 09:00 local, no start recorded
        )
        emergency_in_time = await with_request(
            emergency=True,
            submitted_at=datetime(2026, 3, 10, 0, 0, tzinfo=UTC),
            decided_at=datetime(2026, 3, 10, 23, 59, tzinfo=UTC),
        )
        emergency_late = await with_request(
            emergency=True,
            submitted_at=datetime(2026, 3, 10, 0, 0, tzinfo=UTC),
            decided_at=datetime(2026, 3, 11, 0, 1, tzinfo=UTC),
        )
        late = await make(completed_at=datetime(2026, 3, 18, 8, 0, tzinfo=UTC))
        in_time = await make(completed_at=datetime(2026, 3, 17, 8, 0, tzinfo=UTC))
        no_outcome = await make(outcome=None)
        unscanned = await make(scanned=False)
        planned = await make(kind="planned")
        unpublished = await make(kind="planned")
        for plan_id, status, iid in ((1, "published", planned), (2, "drawn", unpublished)):
            await s.execute(
                text(
                    "INSERT INTO plan (id, year, title, agency_code, agencies, status) "
                    "VALUES (:id, 2026, 'p', 'SCJG', '{SCJG}', :s)"
                ),
                {"id": plan_id, "s": status},
            )
            await s.execute(
                text("UPDATE inspection SET plan_id = :p WHERE id = :i"), {"p": plan_id, "i": iid}
            )
    async with sessionmaker() as s, s.begin():
        counts = await run_trace_checks(s, 2026)
    assert counts == {
        "inspectors_certified": 2,
        "visit_in_window": 1,
        "unplanned_approved": 4,
        "outcome_in_time": 2,
        "results_published": 1,
        "registered": 1,
    }
    assert await failures(sessionmaker) == sorted(
        [
            ("trace_check_failed", one_present, "inspectors_certified"),
            ("trace_check_failed", cert_lapsed, "inspectors_certified"),
            ("trace_check_failed", outside, "visit_in_window"),
            ("trace_check_failed", unapproved, "unplanned_approved"),
            ("trace_check_failed", rejected, "unplanned_approved"),
            ("trace_check_failed", approved_after_visit, "unplanned_approved"),
            ("trace_check_failed", emergency_late, "unplanned_approved"),
            ("trace_check_failed", late, "outcome_in_time"),
            ("trace_check_failed", no_outcome, "outcome_in_time"),
            ("unregistered_visit", unscanned, "registered"),
            ("trace_check_failed", unpublished, "results_published"),
        ],
        key=lambda f: (f[1], f[0], f[2]),
    )
    flagged = {f[1] for f in await failures(sessionmaker)}
    assert not flagged & {
        clean,
        in_time,
        planned,
        approved_on_visit_day,
        emergency_in_time,
    }
    async with sessionmaker() as s, s.begin():
        again = await run_trace_checks(s, 2026)
    assert set(again.values()) == {0}
    assert len(await failures(sessionmaker)) == 11
