"""100 concurrent decisions on one request: exactly one wins, the rest get 409."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.approvals.conftest import World, request_body


async def test_hundred_concurrent_approve_reject_one_success(
    client: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    make_headers: Callable[..., Awaitable[dict[str, str]]],
) -> None:
    r = await client.post(
        "/v1/check-requests", json=request_body(world.usccs[0]), headers=world.scheduler
    )
    rid = r.json()["id"]
    approvers = [world.approver] + [await make_headers("approver", "SCJG") for _ in range(9)]

    async def decide(i: int) -> httpx.Response:
        headers = approvers[i % len(approvers)]
        if i % 2:
            return await client.post(
                f"/v1/check-requests/{rid}/reject", json={"comment": f"驳回 {i}"}, headers=headers
            )
        return await client.post(
            f"/v1/check-requests/{rid}/approve", json={"comment": f"同意 {i}"}, headers=headers
        )

    answers = await asyncio.gather(*(decide(i) for i in range(100)))
    codes = Counter(a.status_code for a in answers)
    assert codes == {200: 1, 409: 99}, codes
    winner = next(a for a in answers if a.status_code == 200).json()
    assert winner["version"] == 2
    for loser in (a for a in answers if a.status_code == 409):
        assert loser.json()["current_status"] == winner["status"]

    async with sessionmaker() as s:
        row = (
            await s.execute(
                text("SELECT status, version, decision_comment FROM check_request WHERE id = :i"),
                {"i": rid},
            )
        ).one()
        audits = (
            await s.execute(
                text(
                    "SELECT count(*) FROM audit_log WHERE object_type = 'check_request' "
                    "AND object_id = :i AND action IN ('check_request.approve', "
                    "'check_request.reject')"
                ),
                {"i": str(rid)},
            )
        ).scalar_one()
        events = (
            await s.execute(
                text(
                    "SELECT count(*) FROM event WHERE aggregate_id = :i AND type IN "
                    "('check_request.approved', 'check_request.rejected')"
                ),
                {"i": str(rid)},
            )
        ).scalar_one()
        inspections = (
            await s.execute(
                text("SELECT count(*) FROM inspection WHERE check_request_id = :i"), {"i": rid}
            )
        ).scalar_one()
    assert (row.status, row.version) == (winner["status"], 2)
    assert row.decision_comment == winner["decision_comment"]
    assert audits == 1
    assert events == 1
    assert inspections == (1 if winner["status"] == "approved" else 0)
