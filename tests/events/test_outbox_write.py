"""The outbox write: the NOTIFY comes from the database trigger, the audit row can ride along."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.audit.service import AuditEntry
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.events import types as ev
from inspection_hub.events.outbox import NOTIFY_CHANNEL, emit

ACTOR = Principal(7, "scheduler.zhang", "张三", Role.scheduler, "SCJG")


def _dsn(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    url: URL = sessionmaker.kw["bind"].url
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _listen(dsn: str) -> tuple[asyncpg.Connection, asyncio.Queue[str]]:
    conn = await asyncpg.connect(dsn)
    received: asyncio.Queue[str] = asyncio.Queue()
    await conn.add_listener(NOTIFY_CHANNEL, lambda *args: received.put_nowait(args[2]))
    return conn, received


async def test_committed_event_wakes_listeners_once_without_a_notify_call(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    conn, received = await _listen(_dsn(sessionmaker))
    try:
        async with sessionmaker() as session, session.begin():
            for n in range(3):  # three events, one transaction: one wake-up
                await emit(session, ev.AGENCY_CREATED, "SCJG", {"n": n})
        await asyncio.wait_for(received.get(), timeout=10)
        await asyncio.sleep(0.3)
        assert received.empty(), "PostgreSQL folds one transaction's notifications into one"
    finally:
        await conn.close()


async def test_rolled_back_event_wakes_nobody(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    conn, received = await _listen(_dsn(sessionmaker))
    try:
        async with sessionmaker() as session:
            await emit(session, ev.AGENCY_CREATED, "SCJG", {"n": 1})
            await session.rollback()
        await asyncio.sleep(0.5)
        assert received.empty()
    finally:
        await conn.close()


async def _counts(sessionmaker: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    async with sessionmaker() as session:
        row = (
            await session.execute(
                text(
                    "SELECT (SELECT count(*) FROM event), "
                    "(SELECT count(*) FROM audit_log WHERE action = 'agency.create')"
                )
            )
        ).one()
        return int(row[0]), int(row[1])


async def test_event_with_audit_writes_both_rows_in_one_statement(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    entry = AuditEntry(ACTOR, "agency.create", "agency", "SCJG", after={"name": "市场监管局"})
    async with sessionmaker() as session, session.begin():
        event_id = await emit(session, ev.AGENCY_CREATED, "SCJG", {"code": "SCJG"}, audit=entry)
    async with sessionmaker() as session:
        audit: Any = (
            await session.execute(
                text(
                    "SELECT actor_id, actor_name, role, object_type, object_id, after "
                    "FROM audit_log WHERE action = 'agency.create'"
                )
            )
        ).one()
        event = (await session.execute(text("SELECT id, aggregate_seq FROM event"))).one()
    assert (event.id, event.aggregate_seq) == (event_id, 1)
    assert (audit.actor_id, audit.actor_name, audit.role) == (7, "scheduler.zhang", "scheduler")
    assert (audit.object_type, audit.object_id) == ("agency", "SCJG")
    assert audit.after == {"name": "市场监管局"}


async def test_event_with_audit_rolls_back_together(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    entry = AuditEntry(ACTOR, "agency.create", "agency", "SCJG")
    async with sessionmaker() as session:
        await emit(session, ev.AGENCY_CREATED, "SCJG", {"code": "SCJG"}, audit=entry)
        assert await session.scalar(text("SELECT count(*) FROM audit_log")) == 1
        await session.rollback()
    assert await _counts(sessionmaker) == (0, 0)
