"""The denormalised booked day (inspection_inspector.booked_day) and the double-booking lookup.

The detector and the pre-check find an inspector's other bookings through
``inspection_inspector (inspector_id, booked_day)``; these tests pin that the column follows the
inspection (writers and the update trigger) and that double bookings are still found.
"""

from __future__ import annotations

from datetime import date

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.config import Settings
from inspection_hub.conflicts import facts as repo
from inspection_hub.conflicts.rules import InspectionFact, evaluate
from inspection_hub.conflicts.service import LOCK_NAMESPACE, load_locked, policy_book
from inspection_hub.inspections.service import create_inspections_bulk, keyring_for
from tests.conflicts.helpers import (
    Headers,
    add_enterprise,
    add_inspector,
    conflicts,
    run_detector,
    schedule,
)

SM = async_sessionmaker[AsyncSession]


async def booked_days(sessionmaker: SM, inspection_id: int) -> list[tuple[int, date | None]]:
    """(inspector id, booked day) rows of one inspection."""
    async with sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT inspector_id, booked_day FROM inspection_inspector "
                "WHERE inspection_id = :i ORDER BY inspector_id"
            ),
            {"i": inspection_id},
        )
        return [(int(r.inspector_id), r.booked_day) for r in rows]


async def test_booked_day_follows_the_inspection(
    client: httpx.AsyncClient,
    admin: Headers,
    two_agencies: tuple[str, str],
    sessionmaker: SM,
    settings: Settings,
) -> None:
    uscc = await add_enterprise(client, admin, 11)
    p1 = await add_inspector(client, admin, "SCJG", "CERT-1")
    p2 = await add_inspector(client, admin, "SCJG", "CERT-2")
    one_day = await schedule(
        sessionmaker,
        settings,
        uscc,
        "SCJG",
        ["SCJG-001"],
        date(2026, 12, 3),
        date(2026, 12, 3),
        inspectors=[p1, p2],
    )
    multi_day = await schedule(
        sessionmaker,
        settings,
        uscc,
        "SCJG",
        ["SCJG-001"],
        date(2026, 12, 7),
        date(2026, 12, 9),
        inspectors=[p1],
    )
    assert await booked_days(sessionmaker, one_day) == [
        (p1, date(2026, 12, 3)),
        (p2, date(2026, 12, 3)),
    ]
    assert await booked_days(sessionmaker, multi_day) == [(p1, None)]
    # Whoever changes an inspection's dates, the trigger keeps the booked day in step.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE inspection SET window_end = window_start WHERE id = :i"), {"i": multi_day}
        )
        await session.execute(
            text("UPDATE inspection SET window_end = DATE '2026-12-05' WHERE id = :i"),
            {"i": one_day},
        )
    assert await booked_days(sessionmaker, multi_day) == [(p1, date(2026, 12, 7))]
    assert await booked_days(sessionmaker, one_day) == [(p1, None), (p2, None)]
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE inspection SET visit_date = DATE '2026-12-04' WHERE id = :i"),
            {"i": one_day},
        )
    assert await booked_days(sessionmaker, one_day) == [
        (p1, date(2026, 12, 4)),
        (p2, date(2026, 12, 4)),
    ]


async def test_bulk_scheduling_sets_booked_day(
    client: httpx.AsyncClient,
    admin: Headers,
    two_agencies: tuple[str, str],
    sessionmaker: SM,
    settings: Settings,
) -> None:
    a = await add_enterprise(client, admin, 21)
    b = await add_enterprise(client, admin, 22)
    p1 = await add_inspector(client, admin, "SCJG", "CERT-21")
    async with sessionmaker() as session, session.begin():
        one_day = await create_inspections_bulk(
            session,
            None,
            keyring=keyring_for(settings.data_dir),
            agency_code="SCJG",
            kind="planned",
            matter_codes=["SCJG-001"],
            window_start=date(2026, 12, 10),
            window_end=date(2026, 12, 10),
            assignments=[(a, [p1])],
        )
        multi_day = await create_inspections_bulk(
            session,
            None,
            keyring=keyring_for(settings.data_dir),
            agency_code="SCJG",
            kind="planned",
            matter_codes=["SCJG-001"],
            window_start=date(2026, 12, 10),
            window_end=date(2026, 12, 11),
            assignments=[(b, [p1])],
        )
    assert await booked_days(sessionmaker, one_day[0]) == [(p1, date(2026, 12, 10))]
    assert await booked_days(sessionmaker, multi_day[0]) == [(p1, None)]


async def test_double_booking_found_by_detector_and_precheck_loader(
    client: httpx.AsyncClient,
    admin: Headers,
    two_agencies: tuple[str, str],
    sessionmaker: SM,
    settings: Settings,
) -> None:
    first = await add_enterprise(client, admin, 31)
    second = await add_enterprise(client, admin, 32)
    third = await add_enterprise(client, admin, 33)
    p1 = await add_inspector(client, admin, "SCJG", "CERT-31")
    p2 = await add_inspector(client, admin, "SCJG", "CERT-32")
    day = date(2026, 12, 14)
    here = await schedule(
        sessionmaker, settings, first, "SCJG", ["SCJG-001"], day, day, inspectors=[p1]
    )
    there = await schedule(
        sessionmaker, settings, second, "SCJG", ["SCJG-001"], day, day, inspectors=[p1, p2]
    )
    # Same inspector, other day / multi-day window: not a double booking.
    await schedule(
        sessionmaker,
        settings,
        third,
        "SCJG",
        ["SCJG-001"],
        date(2026, 12, 15),
        date(2026, 12, 15),
        inspectors=[p1],
    )
    await schedule(
        sessionmaker,
        settings,
        third,
        "SCJG",
        ["SCJG-001"],
        date(2026, 12, 13),
        date(2026, 12, 16),
        inspectors=[p2],
    )
    await run_detector(sessionmaker)
    found = [
        (r.enterprise_uscc, sorted(r.inspection_ids), r.detail["reason"])
        for r in await conflicts(sessionmaker)
        if r.kind == "inspector_conflict"
    ]
    assert sorted(found) == sorted(
        [
            (first, sorted([here, there]), "double_booked"),
            (second, sorted([here, there]), "double_booked"),
        ]
    )

    # The pre-check's candidate (not stored) gets its bookings in the same load.
    candidate = InspectionFact(
        id=-1,
        agency_code="YJGL",
        uscc=third,
        premises_id=None,
        categories=frozenset({"work_safety"}),
        kind="unplanned",
        basis="complaint",
        status="pending_request",
        window_start=day,
        window_end=day,
        inspector_ids=frozenset({p2}),
        is_request=True,
    )
    async with sessionmaker() as session:
        loaded = await repo.load_facts(session, third, repo.history_start(2026), probe=candidate)
    assert loaded is not None
    assert [(b.id, b.uscc) for b in loaded.bookings] == [(there, second)]
    assert len(loaded.history) == 2
    findings = evaluate(
        candidate, loaded.history, loaded.enterprise, policy_book().at(day), loaded.bookings
    )
    assert [sorted(f.inspection_ids) for f in findings if f.kind == "inspector_conflict"] == [
        sorted([-1, there])
    ]
    async with sessionmaker() as session:
        assert await repo.load_facts(session, "91320402MA00000000", date(2026, 1, 1)) is None


async def test_lock_taken_with_the_load_is_held_to_the_end_of_the_transaction(
    client: httpx.AsyncClient,
    admin: Headers,
    two_agencies: tuple[str, str],
    sessionmaker: SM,
) -> None:
    uscc = await add_enterprise(client, admin, 41)
    other = await add_enterprise(client, admin, 42)
    lock_sql = text("SELECT pg_try_advisory_xact_lock(hashtext(:ns), hashtext(:key)) AS got")
    async with sessionmaker() as session, session.begin():
        # The load is the transaction's first statement: it must begin the transaction.
        loaded = await load_locked(session, uscc, None)
        assert loaded is not None
        assert loaded.history == []
        async with sessionmaker() as probe, probe.begin():
            held = await probe.execute(lock_sql, {"ns": LOCK_NAMESPACE, "key": uscc})
            assert held.scalar_one() is False
            free = await probe.execute(lock_sql, {"ns": LOCK_NAMESPACE, "key": other})
            assert free.scalar_one() is True
    async with sessionmaker() as probe, probe.begin():
        released = await probe.execute(lock_sql, {"ns": LOCK_NAMESPACE, "key": uscc})
        assert released.scalar_one() is True
