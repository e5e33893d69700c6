"""Survey dispatch: N due surveys sent to a local receiver (signed callbacks, SSRF-guarded).

A fast asyncio receiver runs in a subprocess on 127.0.0.1 (keep-alive, answers 200 to every
POST, counts them). The bench COPYs N enterprises (callback URL = the receiver), N completed
inspections and N due surveys, then runs what the scheduler runs: `dispatch_due` (links issued,
callbacks queued) and `deliver_callbacks` (claims a batch, posts with bounded concurrency,
records the outcomes) until nothing is due. Prints surveys/s for dispatch, deliveries/s for
the callbacks, the receiver's count and the peak RSS of this process.

Run: ``python -m bench.survey_bench [--n 100000] [--concurrency 8] [--batch 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import asyncpg
from tests.fixtures.database import TestDatabase

from inspection_hub.config import Settings
from inspection_hub.db.migrate import upgrade_to_head_async
from inspection_hub.db.session import make_engine, make_sessionmaker
from inspection_hub.kit.synth import make_uscc
from inspection_hub.surveys.delivery import deliver_callbacks
from inspection_hub.surveys.service import dispatch_due
from inspection_hub.webhooks.http import make_http_client

RECEIVER = r"""
import asyncio, sys
count = 0
async def handle(reader, writer):
    global count
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            count += 1
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
async def report(reader, writer):
    writer.write(str(count).encode()); await writer.drain(); writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    stats = await asyncio.start_server(report, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], stats.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


async def received(stats_port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", stats_port)
    data = await reader.read()
    writer.close()
    return int(data)


async def load(url: str, n: int, callback: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(
            "INSERT INTO agency (code, name) VALUES ('SCJG', '区市场监管局');"
            "INSERT INTO matter (code, agency_code, name, category) "
            "VALUES ('SCJG-001', 'SCJG', '食品经营许可', 'food_safety')"
        )
        usccs = [make_uscc("350102", i) for i in range(n)]
        await conn.copy_records_to_table(
            "enterprise",
            records=((u, u, "350102", "5211", "B", callback) for u in usccs),
            columns=["uscc", "name", "district_code", "industry_code", "risk_class",
                     "callback_url"],
        )  # fmt: skip
        visit = date(2026, 3, 10)
        completed = datetime(2026, 3, 10, 10, tzinfo=UTC)
        await conn.copy_records_to_table(
            "inspection",
            records=(
                (u, i + 1, "unplanned", "completed", "SCJG", 2026, visit, visit, visit,
                 completed, "no_issue")
                for i, u in enumerate(usccs)
            ),
            columns=["enterprise_uscc", "id", "kind", "status", "agency_code", "year",
                     "window_start", "window_end", "visit_date", "completed_at", "outcome"],
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO inspection_matter (enterprise_uscc, inspection_id, matter_code, "
            "agency_code, category) SELECT enterprise_uscc, id, 'SCJG-001', 'SCJG', 'food_safety' "
            "FROM inspection"
        )
        await conn.execute(
            """
            INSERT INTO survey (enterprise_uscc, inspection_id, agency_code, year,
                                inspection_kind, status, due_at, callback_url)
            SELECT i.enterprise_uscc, i.id, i.agency_code, i.year, i.kind, 'pending',
                   i.completed_at + interval '1 day', e.callback_url
            FROM inspection i JOIN enterprise e ON e.uscc = i.enterprise_uscc
            """
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1000)
    return parser.parse_args()


async def main(args: argparse.Namespace, port: int, stats_port: int) -> None:
    db = TestDatabase()
    url = await db.create()
    try:
        await upgrade_to_head_async(url)
        t = time.perf_counter()
        await load(url, args.n, f"http://127.0.0.1:{port}/survey-hook")
        print(f"load {args.n:,} enterprises/inspections/surveys: {time.perf_counter() - t:.1f} s")
        settings = Settings(
            env="test",
            allow_private_callback_urls=True,
            survey_dispatch_batch=args.batch,
            survey_callback_concurrency=args.concurrency,
        )
        engine = make_engine(url, settings)
        factory = make_sessionmaker(engine)
        now = datetime(2026, 3, 12, tzinfo=UTC)
        t = time.perf_counter()
        sent = 0
        while True:
            async with factory() as session, session.begin():
                k = await dispatch_due(
                    session, public_base_url="https://hub.example", now=now, limit=args.batch
                )
            if not k:
                break
            sent += k
        took = time.perf_counter() - t
        print(f"dispatch (links issued, callbacks queued): {sent:,} in {took:.1f} s "
              f"= {sent / took:,.0f} surveys/s")  # fmt: skip
        async with make_http_client(settings) as http:  # the service's shared client
            t = time.perf_counter()
            attempted = 0
            while True:
                k = await deliver_callbacks(
                    factory, http, settings, now=now + timedelta(minutes=1), limit=args.batch
                )
                if not k:
                    break
                attempted += k
                print(f"  {attempted:,} attempted at {time.perf_counter() - t:.1f} s", flush=True)
            took = time.perf_counter() - t
        got = await received(stats_port)
        async with factory() as session:
            from sqlalchemy import text

            delivered = (
                await session.execute(
                    text("SELECT count(*) FROM survey WHERE callback_status = 'delivered'")
                )
            ).scalar_one()
            errors = (
                await session.execute(
                    text(
                        "SELECT callback_last_error, count(*) FROM survey WHERE callback_status "
                        "<> 'delivered' AND callback_last_error IS NOT NULL GROUP BY 1"
                    )
                )
            ).all()
        for error, count in errors:
            print(f"not delivered: {count:,} x {error}")
        print(f"callbacks: {attempted:,} attempted, {delivered:,} delivered, {got:,} received "
              f"in {took:.1f} s = {delivered / took:,.0f} deliveries/s "
              f"(concurrency {args.concurrency}, batch {args.batch})")  # fmt: skip
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"peak RSS of the bench process: {rss / 1024:.0f} MiB")
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
