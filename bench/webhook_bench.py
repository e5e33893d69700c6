"""Webhook dispatcher: N signed deliveries to a local receiver in a subprocess (SSRF-guarded).

Emits N events through the outbox, lets the `webhook_dispatcher` consumer fan them out to one
subscription whose URL is the receiver (the survey bench's fast asyncio receiver), then sends
them twice over: with `deliver_due` in a loop (claim a batch, send, record the batch) and with
the worker's streaming `Dispatcher` (claims as slots free up; the same deliveries, set pending
again), and prints deliveries/s for each.

Run: ``python -m bench.webhook_bench [--n 10000] [--concurrency 8]``.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

from sqlalchemy import text
from tests.fixtures.database import TestDatabase

from bench.survey_bench import RECEIVER, received
from inspection_hub.config import Settings
from inspection_hub.db.migrate import upgrade_to_head_async
from inspection_hub.db.session import make_engine, make_sessionmaker
from inspection_hub.events import types as ev
from inspection_hub.events.outbox import emit
from inspection_hub.events.relay import drain
from inspection_hub.webhooks.dispatcher import Dispatcher, deliver_due
from inspection_hub.webhooks.http import make_http_client
from inspection_hub.webhooks.signing import encrypt_secret, new_secret


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    return parser.parse_args()


async def main(args: argparse.Namespace, port: int, stats_port: int) -> None:
    db = TestDatabase()
    url = await db.create()
    try:
        await upgrade_to_head_async(url)
        settings = Settings(
            env="test",
            session_secret="s" * 40,
            token_pepper="p" * 40,
            allow_private_callback_urls=True,
            webhook_concurrency=args.concurrency,
            survey_callback_concurrency=args.concurrency,
        )
        engine = make_engine(url, settings)
        factory = make_sessionmaker(engine)
        async with factory() as session, session.begin():
            await session.execute(
                text(
                    "INSERT INTO webhook_subscription (url, event_types, secret_encrypted) "
                    "VALUES (:url, ARRAY['enterprise.updated'], :secret)"
                ),
                {
                    "url": f"http://127.0.0.1:{port}/hook",
                    "secret": encrypt_secret(new_secret(), settings.session_secret),
                },
            )

        async def fan_out() -> None:
            for start in range(0, args.n, 500):
                async with factory() as session, session.begin():
                    for i in range(start, min(start + 500, args.n)):
                        await emit(session, ev.ENTERPRISE_UPDATED, f"E{i}", {"i": i})
            await drain(factory, consumers=["webhook_dispatcher"], timeout=600)

        async def delivered() -> int:
            async with factory() as session:
                return int(
                    (
                        await session.execute(
                            text("SELECT count(*) FROM webhook_delivery WHERE status='delivered'")
                        )
                    ).scalar_one()
                )

        async with make_http_client(settings) as http:
            t = time.perf_counter()
            await fan_out()
            print(f"{args.n:,} events emitted and fanned out in {time.perf_counter() - t:.1f} s")
            t = time.perf_counter()
            while await deliver_due(factory, http, settings, limit=1000):
                pass
            took = time.perf_counter() - t
            done = await delivered()
            print(f"deliver_due: {done:,} delivered in {took:.1f} s = {done / took:,.0f} "
                  f"deliveries/s (concurrency {args.concurrency})")  # fmt: skip

            async with factory() as session, session.begin():
                await session.execute(
                    text(
                        "UPDATE webhook_delivery SET status = 'pending', attempts = 0, "
                        "delivered_at = NULL, next_attempt_at = now()"
                    )
                )
            dispatcher = Dispatcher(factory, http, settings, asyncio.Event())
            t = time.perf_counter()
            task = asyncio.create_task(dispatcher.run())
            while (done := await delivered()) < args.n:  # noqa: ASYNC110 - polls the DB
                await asyncio.sleep(0.05)
            took = time.perf_counter() - t
            await dispatcher.stop(5.0)
            await task
            print(f"Dispatcher (worker loop): {done:,} delivered in {took:.1f} s = "
                  f"{done / took:,.0f} deliveries/s (concurrency {args.concurrency})")  # fmt: skip
        print(f"receiver counted {await received(stats_port):,} requests")
        await engine.dispose()
    finally:
        await db.drop()


if __name__ == "__main__":
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        ports = [int(p) for p in receiver.stdout.readline().split()]
        asyncio.run(main(parse_args(), ports[0], ports[1]))
    finally:
        receiver.terminate()
        receiver.wait()
