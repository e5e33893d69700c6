"""Event backbone benchmark: throughput of one worker and commit-to-handler lag at 500 events/s.

    PYTHONPATH=src python -m bench.events_bench [--pg postgresql://postgres@127.0.0.1:5432]

Creates a scratch database, migrates it, registers a no-op consumer and measures:
1. writes/s: events emitted through the outbox (emit, 100 per transaction, 4 writers);
2. handled/s: one worker's relay draining that backlog (no-op handler);
3. lag p50/p99 from each writer's COMMIT returning to the handler being called, under a steady
   500 events/s (one event per transaction) for 20 s, with the worker woken by LISTEN/NOTIFY.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.config import Settings
from inspection_hub.db.migrate import upgrade_to_head_async
from inspection_hub.db.session import make_engine, make_sessionmaker
from inspection_hub.events import types as ev
from inspection_hub.events.outbox import emit
from inspection_hub.events.registry import EventEnvelope, handler
from inspection_hub.events.relay import run_once, select_consumers
from inspection_hub.events.worker import EventWorker

HANDLED_AT: dict[int, float] = {}


@handler("bench_noop", ev.ENTERPRISE_UPDATED)
async def _noop(session: AsyncSession, event: EventEnvelope) -> None:
    HANDLED_AT.setdefault(event.id, time.perf_counter())


async def main(pg: str, seconds: float, rate: int, backlog: int) -> None:
    """Run the three measurements and print them."""
    name = f"ih_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg + "/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = pg.replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    settings = Settings(
        env="test",
        session_secret="b" * 40,
        token_pepper="p" * 40,
        db_pool_size=10,
        db_max_overflow=10,
        event_poll_seconds=1.0,
    )
    try:
        await upgrade_to_head_async(url)
        engine = make_engine(url, settings)
        sm = make_sessionmaker(engine)
        consumers = select_consumers(["bench_noop"])

        # 1. write throughput
        per_tx, writers = 100, 4

        async def write(worker_no: int, n: int) -> None:
            for start in range(0, n, per_tx):
                async with sm() as session, session.begin():
                    for i in range(start, min(n, start + per_tx)):
                        await emit(session, ev.ENTERPRISE_UPDATED, f"W{worker_no}-{i % 50}", {})

        t0 = time.perf_counter()
        await asyncio.gather(*(write(w, backlog // writers) for w in range(writers)))
        write_s = time.perf_counter() - t0
        print(f"written: {backlog} events in {write_s:.2f} s = {backlog / write_s:,.0f} events/s")

        # 2. handling throughput of one worker (the relay loop) over the backlog
        t0 = time.perf_counter()
        handled = 0
        while handled < backlog:
            handled += await run_once(sm, consumers, limit=settings.event_batch_size)
        handle_s = time.perf_counter() - t0
        print(
            f"handled: {handled} events in {handle_s:.2f} s = {handled / handle_s:,.0f} events/s "
            "(one worker, no-op handler)"
        )

        # 3. lag at a steady rate, worker woken by NOTIFY
        HANDLED_AT.clear()
        committed_at: dict[int, float] = {}
        async with httpx.AsyncClient() as http:
            # The worker has its own engine (pool), as a separate worker process would.
            worker_engine = make_engine(url, settings)
            worker = EventWorker(
                worker_engine,
                make_sessionmaker(worker_engine),
                http,
                settings,
                consumers=consumers,
                deliver_webhooks=False,
            )
            await worker.start()
            await asyncio.sleep(0.5)
            total = int(seconds * rate)
            start = time.perf_counter()

            aggregate_locks = [asyncio.Lock() for _ in range(200)]

            async def one(i: int) -> None:
                # One writer per aggregate at a time, as the service's writers are (they hold
                # the aggregate's row lock, emit's contract): two concurrent writers of one
                # aggregate take the same aggregate_seq and one fails on uq_event_aggregate_seq.
                async with aggregate_locks[i % 200], sm() as session:
                    async with session.begin():
                        event_id = await emit(session, ev.ENTERPRISE_UPDATED, f"L{i % 200}", {})
                    committed_at[event_id] = time.perf_counter()

            tasks: list[asyncio.Task[Any]] = []
            for i in range(total):
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(i)))
            await asyncio.gather(*tasks)
            achieved = total / (time.perf_counter() - start)
            deadline = time.perf_counter() + 30
            while len(HANDLED_AT) < total and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            await worker.stop()
            await worker_engine.dispose()
        lags = sorted(
            max(0.0, HANDLED_AT[e] - c) * 1000 for e, c in committed_at.items() if e in HANDLED_AT
        )
        if len(lags) < 2:
            print(f"lag: only {len(lags)}/{total} events handled (xmin held back?)")
            await engine.dispose()
            return
        q = statistics.quantiles(lags, n=100)
        print(
            f"lag at {achieved:,.0f} events/s offered for {seconds:.0f} s: "
            f"p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, max {lags[-1]:.1f} ms "
            f"({len(lags)}/{total} handled)"
        )
        await engine.dispose()
    finally:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--backlog", type=int, default=20000)
    args = parser.parse_args()
    asyncio.run(main(args.pg, args.seconds, args.rate, args.backlog))
