"""The one-statement submission: what it refuses, what it wakes, and that it stays planned once.

Without an Idempotency-Key a non-emergency check request is filed by one SQL statement on a bare
pooled connection (`approvals.service.submit_at_once`): the facts for the pre-check, the request,
its event and its audit row. Its behaviour is shared with the session path and tested in
test_flow.py; these tests cover what only this path can get wrong.
"""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
from pydantic import TypeAdapter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.approvals import service
from inspection_hub.approvals.schemas import CheckRequestCreate
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.config import Settings
from inspection_hub.events.outbox import NOTIFY_CHANNEL
from tests.approvals.conftest import World, request_body

_COUNTS = (
    "SELECT (SELECT count(*) FROM check_request) AS requests, "
    "(SELECT count(*) FROM event) AS events, "
    "(SELECT count(*) FROM audit_log WHERE action = 'check_request.submit') AS audits"
)


async def _counts(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessionmaker() as s:
        return dict((await s.execute(text(_COUNTS))).mappings().one())


def _driver_url(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://")


async def test_value_the_database_cannot_hold_is_422_and_changes_nothing(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    before = await _counts(sessionmaker)
    body = request_body(world.usccs[0], reason="群众投诉\u0000")
    r = await client.post("/v1/check-requests", json=body, headers=world.scheduler)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert await _counts(sessionmaker) == before
    r = await client.post(
        "/v1/check-requests", json=request_body(world.usccs[0]), headers=world.scheduler
    )
    assert r.status_code == 201, r.text


async def test_every_bad_field_is_reported_at_once(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # Checks that need no database (window, basis) and those that do (matters, enterprise) are
    # reported together, and nothing is written.
    before = await _counts(sessionmaker)
    body = request_body(
        "91350100M000100Y43",  # a valid USCC nobody registered
        matters=["YJGL-001", "NOPE-1"],
        basis="other",
        reason="short",
        window={"start": "2020-01-06", "end": "2020-01-03"},
    )
    r = await client.post("/v1/check-requests", json=body, headers=world.scheduler)
    assert r.status_code == 422, r.text
    fields = sorted(e["field"] for e in r.json()["errors"])
    assert fields == [
        "enterprise",
        "matters.0",
        "matters.1",
        "reason",
        "window.end",
        "window.start",
    ]
    assert await _counts(sessionmaker) == before


async def test_a_submission_wakes_the_event_workers(
    client: httpx.AsyncClient, world: World, database_url: str
) -> None:
    listener = await asyncpg.connect(_driver_url(database_url))
    woken: asyncio.Queue[str] = asyncio.Queue()
    try:
        await listener.add_listener(NOTIFY_CHANNEL, lambda *args: woken.put_nowait(args[2]))
        r = await client.post(
            "/v1/check-requests", json=request_body(world.usccs[1]), headers=world.scheduler
        )
        assert r.status_code == 201, r.text
        assert await asyncio.wait_for(woken.get(), timeout=10) == NOTIFY_CHANNEL
    finally:
        await listener.close()


async def test_the_statement_is_planned_once_per_connection(
    client: httpx.AsyncClient, world: World, settings: Settings, database_url: str
) -> None:
    # PostgreSQL re-plans a prepared statement on every execution when it never finds the
    # generic plan cheaper; for this statement that doubled the database's CPU per submission
    # (migration 0011). After the customary five custom plans it must use the generic one.
    conn = await asyncpg.connect(_driver_url(database_url))
    actor = Principal(
        user_id=1, username="scheduler.plan", display_name="计划员", role=Role.scheduler,
        agency_code="SCJG",
    )  # fmt: skip
    adapter = TypeAdapter(CheckRequestCreate)
    try:
        for i in range(9):
            body = adapter.validate_python(request_body(world.usccs[i % 3]))
            view = await service.submit_at_once(conn, actor, body, settings=settings)
            assert view.row["status"] == "pending"
            assert view.precheck is not None
        plans = await conn.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
            service._SUBMIT_AT_ONCE,
        )
    finally:
        await conn.close()
    assert plans is not None
    assert plans["custom_plans"] <= 5
    assert plans["generic_plans"] >= 4
