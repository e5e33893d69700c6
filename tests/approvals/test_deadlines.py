"""Decision deadlines across Chinese holidays, escalation/expiry exactly once, emergencies."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.approvals.service import run_deadlines
from inspection_hub.kit.timeutil import local_today
from inspection_hub.kit.workdays import SHANGHAI, add_working_days
from tests.approvals.conftest import World, request_body

END = (23, 59, 59, 999999)


def test_deadline_across_spring_festival_2026() -> None:
    # Thu 12 Feb; Sat 14 Feb is a working day (调休); 15-23 Feb are holidays.
    submitted = datetime(2026, 2, 12, 16, 30, tzinfo=SHANGHAI)
    due = add_working_days(submitted, 3)
    assert due == datetime(2026, 2, 24, *END, tzinfo=SHANGHAI)  # 13 Fri, 14 Sat, 24 Tue
    # the further 2 working days to expiry: 25, 26 Feb
    assert add_working_days(due, 2) == datetime(2026, 2, 26, *END, tzinfo=SHANGHAI)
    # Submitted on the eve of the holiday: Fri 13 -> 14 Sat, 24, 25
    assert add_working_days(datetime(2026, 2, 13, 9, tzinfo=SHANGHAI), 3) == datetime(
        2026, 2, 25, *END, tzinfo=SHANGHAI
    )
    # 27 Feb Fri -> 28 Sat is a working day (调休), then 2, 3 Mar
    assert add_working_days(datetime(2026, 2, 27, 9, tzinfo=SHANGHAI), 3) == datetime(
        2026, 3, 3, *END, tzinfo=SHANGHAI
    )


def test_deadline_across_national_day_2026() -> None:
    # Fri 18 Sep -> Sun 20 Sep is a working day (调休), 21, 22
    assert add_working_days(datetime(2026, 9, 18, 9, tzinfo=SHANGHAI), 3) == datetime(
        2026, 9, 22, *END, tzinfo=SHANGHAI
    )
    # Tue 29 Sep -> 30 Sep, then 1-7 Oct holidays, 8 Thu, 9 Fri
    assert add_working_days(datetime(2026, 9, 29, 9, tzinfo=SHANGHAI), 3) == datetime(
        2026, 10, 9, *END, tzinfo=SHANGHAI
    )
    # Fri 9 Oct -> Sat 10 Oct is a working day (调休), 12, 13
    assert add_working_days(datetime(2026, 10, 9, 9, tzinfo=SHANGHAI), 3) == datetime(
        2026, 10, 13, *END, tzinfo=SHANGHAI
    )
    # days are Shanghai days: 17:00 UTC on Thu 12 Feb is already Fri 13 Feb in Shanghai
    late = datetime(2026, 2, 12, 17, 0, tzinfo=UTC)
    assert add_working_days(late, 3) == datetime(2026, 2, 25, *END, tzinfo=SHANGHAI)


async def _submit(
    client: httpx.AsyncClient, world: World, **overrides: object
) -> dict[str, object]:
    r = await client.post(
        "/v1/check-requests",
        json=request_body(world.usccs[0], **overrides),
        headers=world.scheduler,
    )
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body


async def _events(sm: async_sessionmaker[AsyncSession], type_: str) -> list[str]:
    async with sm() as s:
        rows = await s.execute(
            text("SELECT aggregate_id FROM event WHERE type = :t ORDER BY id"), {"t": type_}
        )
        return [r[0] for r in rows]


async def _sweep(
    sm: async_sessionmaker[AsyncSession], now: datetime
) -> tuple[list[int], list[int]]:
    async with sm() as s, s.begin():
        report = await run_deadlines(s, now)
    return report.escalated, report.expired


async def test_escalation_then_expiry_exactly_once_with_concurrent_sweeps(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = await _submit(client, world)
    rid = int(created["id"])  # type: ignore[call-overload]
    due = datetime.fromisoformat(str(created["decision_due_at"]))
    expires = datetime.fromisoformat(str(created["expires_at"]))
    assert due == add_working_days(datetime.fromisoformat(str(created["submitted_at"])), 3)
    assert expires == add_working_days(due, 2)

    # before the deadline nothing happens
    assert await _sweep(sessionmaker, due) == ([], [])
    after_due = due + timedelta(minutes=1)
    results = await asyncio.gather(*(_sweep(sessionmaker, after_due) for _ in range(4)))
    assert sorted(e for esc, _ in results for e in esc) == [rid]
    assert all(exp == [] for _, exp in results)
    assert await _events(sessionmaker, "check_request.escalated") == [str(rid)]

    r = await client.get(f"/v1/check-requests/{rid}", headers=world.supervisor)
    assert r.json()["status"] == "pending"
    assert r.json()["escalated_at"] is not None

    after_expiry = expires + timedelta(minutes=1)
    results = await asyncio.gather(*(_sweep(sessionmaker, after_expiry) for _ in range(4)))
    assert sorted(x for _, exp in results for x in exp) == [rid]
    assert all(esc == [] for esc, _ in results)
    assert await _events(sessionmaker, "check_request.expired") == [str(rid)]
    assert await _events(sessionmaker, "check_request.escalated") == [str(rid)]
    r = await client.get(f"/v1/check-requests/{rid}", headers=world.supervisor)
    assert r.json()["status"] == "expired"
    r = await client.post(f"/v1/check-requests/{rid}/approve", headers=world.approver)
    assert r.status_code == 409
    async with sessionmaker() as s:
        n = (
            await s.execute(
                text(
                    "SELECT count(*) FROM audit_log WHERE object_type = 'check_request' "
                    "AND action IN ('check_request.escalate', 'check_request.expire')"
                )
            )
        ).scalar_one()
    assert n == 2


async def test_decided_requests_are_never_escalated(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = await _submit(client, world)
    await client.post(f"/v1/check-requests/{created['id']}/approve", headers=world.approver)
    far = datetime.fromisoformat(str(created["expires_at"])) + timedelta(days=30)
    assert await _sweep(sessionmaker, far) == ([], [])


async def test_emergency_unapproved_after_24_hours_flagged_once(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    window = {"start": local_today().isoformat(), "end": local_today().isoformat()}
    late = await _submit(client, world, basis="incident", emergency=True, window=window)
    on_time = await _submit(client, world, basis="complaint", emergency=True, window=window)
    await client.post(f"/v1/check-requests/{on_time['id']}/approve", headers=world.approver)
    submitted = datetime.fromisoformat(str(late["submitted_at"]))

    async def sweep(now: datetime) -> list[int]:
        async with sessionmaker() as s, s.begin():
            return (await run_deadlines(s, now)).emergency_unapproved

    assert await sweep(submitted + timedelta(hours=23, minutes=59)) == []
    flagged = await asyncio.gather(
        *(sweep(submitted + timedelta(hours=24, seconds=1)) for _ in range(3))
    )
    assert sorted(i for f in flagged for i in f) == [late["id"]]
    assert await _events(sessionmaker, "check_request.emergency_unapproved") == [str(late["id"])]
    async with sessionmaker() as s:
        payload = (
            await s.execute(
                text("SELECT payload FROM event WHERE type = 'check_request.emergency_unapproved'")
            )
        ).scalar_one()
    assert payload["reason"] == "emergency_unapproved"
    assert payload["inspection_id"] == late["inspection_id"]
