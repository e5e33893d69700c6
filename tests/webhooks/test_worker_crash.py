"""A worker process SIGKILLed in the middle of 1,000 deliveries: none lost after restart."""

from __future__ import annotations

import signal
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from inspection_hub.config import Settings
from inspection_hub.events import types as ev
from inspection_hub.events.outbox import emit
from tests.fixtures.receiver import Receiver, receiver  # noqa: F401 - fixture
from tests.fixtures.worker import signal_when, start_worker

N = 1000


def _start_worker(database_url: str, settings: Settings, tmp: Path) -> subprocess.Popen[bytes]:
    return start_worker(
        database_url,
        settings,
        tmp,
        INSPECTION_HUB_WEBHOOK_CLAIM_SECONDS="2",
        INSPECTION_HUB_EVENT_POLL_SECONDS="0.2",
        INSPECTION_HUB_WEBHOOK_CONCURRENCY="16",
    )


async def _delivered(sessionmaker: Any) -> int:
    async with sessionmaker() as session:
        result = await session.execute(
            text("SELECT count(*) FROM webhook_delivery WHERE status = 'delivered'")
        )
        return int(result.scalar_one())


async def test_sigkill_mid_delivery_loses_nothing(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: Any,
    settings: Settings,
    database_url: str,
    receiver: Receiver,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Every one of 1,000 deliveries arrives at least once; duplicates keep their webhook-id."""
    receiver.delay = 0.003
    r = await client.post(
        "/v1/webhook-subscriptions",
        json={"url": receiver.url, "event_types": ["enterprise.updated"]},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    async with sessionmaker() as session, session.begin():
        for i in range(N):
            await emit(session, ev.ENTERPRISE_UPDATED, f"E{i}", {"i": i})

    async def a_quarter_arrived() -> bool:
        return len(receiver.requests) >= N // 4

    async def all_delivered() -> bool:
        return await _delivered(sessionmaker) == N

    worker = _start_worker(database_url, settings, tmp_path)
    killed = await signal_when(
        worker, a_quarter_arrived, sig=signal.SIGKILL, polls=3000, interval=0.01
    )
    assert killed == -signal.SIGKILL
    arrived_before_restart = len(receiver.requests)
    assert N // 4 <= arrived_before_restart < N

    worker = _start_worker(database_url, settings, tmp_path)
    assert await signal_when(worker, all_delivered) == 0
    assert await _delivered(sessionmaker) == N
    ids_by_event: dict[int, set[str]] = defaultdict(set)
    for req in receiver.requests:
        ids_by_event[req.json["event_id"]].add(req.headers["webhook-id"])
    assert len(ids_by_event) == N
    assert all(len(ids) == 1 for ids in ids_by_event.values())
    assert len(receiver.requests) >= N
