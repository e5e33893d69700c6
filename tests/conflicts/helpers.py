"""Test helpers for the conflict detector: world set-up and running handlers over the outbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.config import Settings
from inspection_hub.events.registry import EventEnvelope, discover_handlers
from inspection_hub.inspections.service import create_inspection, keyring_for
from inspection_hub.kit.synth import make_uscc

Headers = dict[str, str]
MakeHeaders = Callable[..., Awaitable[Headers]]


async def add_agency(
    client: httpx.AsyncClient, admin: Headers, code: str, matters: Sequence[tuple[str, str]]
) -> None:
    """Register an agency (if new) and its matters (code, category)."""
    r = await client.post("/v1/agencies", json={"code": code, "name": code + "局"}, headers=admin)
    assert r.status_code in (201, 409), r.text
    for matter, category in matters:
        r = await client.post(
            f"/v1/agencies/{code}/matters",
            json={"code": matter, "name": matter + "检查", "category": category},
            headers=admin,
        )
        assert r.status_code == 201, r.text


async def add_enterprise(
    client: httpx.AsyncClient, admin: Headers, serial: int, risk_class: str = "C"
) -> str:
    """Import one enterprise founded long ago; its USCC."""
    uscc = make_uscc("320402", serial)
    row = {
        "uscc": uscc,
        "name": f"测试企业{serial}",
        "district_code": "320402",
        "industry_code": "H62",
        "risk_class": risk_class,
        "established_on": "2010-01-01",
    }
    r = await client.post("/v1/enterprises/import", json={"enterprises": [row]}, headers=admin)
    assert r.status_code == 200, r.text
    return uscc


async def add_inspector(client: httpx.AsyncClient, admin: Headers, agency: str, cert: str) -> int:
    """A certified inspector; its id."""
    r = await client.post(
        f"/v1/agencies/{agency}/inspectors",
        json={
            "name": "检查员" + cert,
            "certificate_no": cert,
            "certificate_valid_until": "2030-12-31",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def schedule(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    uscc: str,
    agency: str,
    matters: Sequence[str],
    start: date,
    end: date,
    *,
    inspectors: Sequence[int] = (),
    basis: str | None = None,
    kind: str = "planned",
) -> int:
    """Create and commit one scheduled inspection (with its inspection.scheduled event)."""
    async with sessionmaker() as session, session.begin():
        inspection = await create_inspection(
            session,
            None,
            keyring=keyring_for(settings.data_dir),
            enterprise_uscc=uscc,
            agency_code=agency,
            kind=kind,
            matter_codes=list(matters),
            window_start=start,
            window_end=end,
            inspector_ids=list(inspectors),
            basis=basis,
        )
        return inspection.id


def envelope(row: Any) -> EventEnvelope:
    """An EventEnvelope from an `event` table row."""
    return EventEnvelope(
        id=row.id,
        type=row.type,
        type_version=row.type_version,
        aggregate_type=row.aggregate_type,
        aggregate_id=row.aggregate_id,
        aggregate_seq=row.aggregate_seq,
        enterprise_uscc=row.enterprise_uscc,
        agency_codes=list(row.agency_codes),
        payload=row.payload,
        occurred_at=row.occurred_at,
    )


async def pending_events(
    sessionmaker: async_sessionmaker[AsyncSession], after: int = 0
) -> list[EventEnvelope]:
    """Events after an id that the conflict detector subscribes to."""
    consumer = discover_handlers()["conflict_detector"]
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                text("SELECT * FROM event WHERE id > :after ORDER BY id"), {"after": after}
            )
        ).all()
    return [envelope(r) for r in rows if r.type in consumer.event_types]


async def run_detector(sessionmaker: async_sessionmaker[AsyncSession], after: int = 0) -> int:
    """Deliver every pending event (id > after) to the detector, one transaction each.

    Loops until no new events appear (handlers emit events of their own). Returns the last id.
    """
    consumer = discover_handlers()["conflict_detector"]
    last = after
    while True:
        async with sessionmaker() as session:
            top = (await session.execute(text("SELECT coalesce(max(id), 0) FROM event"))).scalar()
        if int(top or 0) <= last:
            return last
        for event in await pending_events(sessionmaker, last):
            async with sessionmaker() as session, session.begin():
                await consumer.fn(session, event)
        last = int(top or 0)


async def conflicts(
    sessionmaker: async_sessionmaker[AsyncSession], uscc: str | None = None
) -> list[Any]:
    """Every conflict row (of an enterprise), by id."""
    async with sessionmaker() as session:
        sql = "SELECT * FROM conflict" + (" WHERE enterprise_uscc = :u" if uscc else "")
        return list((await session.execute(text(sql + " ORDER BY id"), {"u": uscc})).all())


async def events_of(sessionmaker: async_sessionmaker[AsyncSession], event_type: str) -> list[Any]:
    """Every event row of a type, by id."""
    async with sessionmaker() as session:
        return list(
            (
                await session.execute(
                    text("SELECT * FROM event WHERE type = :t ORDER BY id"), {"t": event_type}
                )
            ).all()
        )
