"""The detector's worker SIGKILLed in the middle of its work (issue 9's crash tests): after a
restart every finding is recorded once and announced once, and every event the detector takes
was handled exactly once (the cursor's count moves in the handlers' own transactions)."""

from __future__ import annotations

import signal
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.config import Settings
from inspection_hub.events.registry import discover_handlers
from inspection_hub.kit.synth import make_uscc
from tests.conflicts.helpers import Headers, schedule
from tests.fixtures.worker import signal_when, start_worker

N = 300  # enterprises; each gets two agencies' checks in one fortnight: one mergeable finding
FIRST = (date(2026, 12, 1), date(2026, 12, 5))
SECOND = (date(2026, 12, 8), date(2026, 12, 12))

_STATE = """
SELECT (SELECT count(*) FROM conflict WHERE kind = 'mergeable') AS mergeable,
       (SELECT count(*) FROM conflict) AS conflicts,
       (SELECT count(*) FROM event WHERE type = 'conflict.detected') AS announced,
       (SELECT count(DISTINCT aggregate_id) FROM event WHERE type = 'conflict.detected')
           AS announced_distinct,
       (SELECT count(*) FROM event WHERE type = ANY(CAST(:types AS varchar[]))) AS to_handle,
       (SELECT coalesce(sum(handled_count), 0) FROM consumer_cursor WHERE consumer = :c)
           AS handled,
       (SELECT count(*) FROM handler_run WHERE consumer = :c) AS retried
"""


async def _state(sessionmaker: async_sessionmaker[AsyncSession]) -> Any:
    consumer = discover_handlers()["conflict_detector"]
    async with sessionmaker() as session:
        return (
            await session.execute(
                text(_STATE), {"types": sorted(consumer.event_types), "c": consumer.name}
            )
        ).one()


async def _import(client: httpx.AsyncClient, admin: Headers) -> list[str]:
    rows = [
        {
            "uscc": make_uscc("320402", 7000 + i),
            "name": f"测试企业{7000 + i}",
            "district_code": "320402",
            "industry_code": "H62",
            "risk_class": "C",
            "established_on": "2010-01-01",
        }
        for i in range(N)
    ]
    r = await client.post("/v1/enterprises/import", json={"enterprises": rows}, headers=admin)
    assert r.status_code == 200, r.text
    return [row["uscc"] for row in rows]


async def test_sigkill_mid_detection_loses_and_doubles_nothing(
    client: httpx.AsyncClient,
    admin: Headers,
    two_agencies: tuple[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    database_url: str,
    tmp_path: Path,
) -> None:
    pairs: dict[str, list[int]] = {}
    for uscc in await _import(client, admin):
        a = await schedule(sessionmaker, settings, uscc, "SCJG", ["SCJG-001"], *FIRST)
        b = await schedule(sessionmaker, settings, uscc, "YJGL", ["YJGL-001"], *SECOND)
        pairs[uscc] = sorted([a, b])
    # small batches: many commits to be killed between or in the middle of
    env = {"INSPECTION_HUB_EVENT_BATCH_SIZE": "20", "INSPECTION_HUB_EVENT_POLL_SECONDS": "0.2"}

    async def a_quarter_found() -> bool:
        return bool((await _state(sessionmaker)).mergeable >= N // 4)

    async def all_handled() -> bool:
        done = await _state(sessionmaker)
        return bool(done.mergeable == N and done.handled == done.to_handle)

    worker = start_worker(database_url, settings, tmp_path, **env)
    code = await signal_when(worker, a_quarter_found, sig=signal.SIGKILL, polls=3000, interval=0.01)
    assert code == -signal.SIGKILL
    killed = await _state(sessionmaker)
    print(f"killed at {killed.mergeable} of {N} findings, {killed.handled} events handled")
    assert N // 4 <= killed.mergeable < N  # killed in the middle of the work

    worker = start_worker(database_url, settings, tmp_path, **env)
    assert await signal_when(worker, all_handled) == 0

    state = await _state(sessionmaker)
    assert state.to_handle >= 2 * N  # every inspection.scheduled, at least
    assert state.handled == state.to_handle  # each event handled once, none left
    assert state.retried == 0  # nothing failed into a retry
    assert state.conflicts == state.mergeable == N  # one finding per enterprise, nothing else
    assert state.announced == state.announced_distinct == N  # each announced exactly once
    async with sessionmaker() as session:
        found = {
            r.enterprise_uscc: sorted(r.inspection_ids)
            for r in await session.execute(
                text("SELECT enterprise_uscc, inspection_ids FROM conflict")
            )
        }
    assert found == pairs
