"""Conflict detector benchmark: pre-check latency and detector throughput on a large history.

    python -m bench.detector_bench --enterprises 200000 --inspections 1000000
    python -m bench.detector_bench ... --keep            # keep the database, then
    python -m bench.detector_bench ... --reuse DATABASE  # measure again without regenerating

Creates a scratch database on the PostgreSQL server at 127.0.0.1:5432 (or --pg), runs the
migrations, generates N enterprises and M inspections over three years (2024-2026) set-based in
PostgreSQL (generate_series with a seeded multiplicative hash, so the same seed gives the same
data), then measures:

* pre-check latency for one enterprise: the fact loader (enterprise, history, inspector bookings)
  plus ``evaluate`` for a candidate check, p50/p99 over --samples enterprises; end to end with
  a session of its own (pool checkout with pre-ping, BEGIN, ROLLBACK), and the pre-check's own
  part inside an open transaction (as in a request);
* detector throughput: --events new scheduled inspections, each delivered to the real
  ``conflict_detector`` handler in its own transaction by --workers concurrent sessions
  (events/s and findings recorded);
* detector throughput in the event worker's transaction shape: another --events inspections,
  ``event_batch_size`` events per transaction handled one after the other, as the relay's
  ``process_batch`` does;
* resident memory of this process (VmRSS / VmHWM) and the database size.

Targets: pre-check p99 < 10 ms; detector >= 1,000 events/s. The database is dropped at the end
unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg

from inspection_hub.config import Settings
from inspection_hub.conflicts import facts as repo
from inspection_hub.conflicts.handlers import detect
from inspection_hub.conflicts.rules import InspectionFact, evaluate
from inspection_hub.conflicts.service import policy_book
from inspection_hub.db.migrate import upgrade_to_head
from inspection_hub.db.session import make_engine, make_sessionmaker
from inspection_hub.events.registry import EventEnvelope

AGENCIES = 10
INSPECTORS = 2000
CATEGORIES = ("food_safety", "work_safety", "fire_safety", "environment", "quality", "pricing")


def rss_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MiB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            values[line.split(":")[0]] = int(line.split()[1]) / 1024
    return values.get("VmRSS", float("nan")), values.get("VmHWM", float("nan"))


def _h(expr: str, seed: int, salt: int) -> str:
    """A seeded integer hash of an SQL bigint expression (non-negative)."""
    return f"((({expr}) * 2654435761 + {seed * 1000003 + salt * 7919}) % 2147483647)"


GENERATE = """
INSERT INTO agency (code, name)
SELECT 'A' || lpad(a::text, 2, '0'), '机关' || a FROM generate_series(1, {agencies}) a;
INSERT INTO matter (code, agency_code, name, category)
SELECT 'A' || lpad(a::text, 2, '0') || '-' || c, 'A' || lpad(a::text, 2, '0'), '事项',
       (ARRAY{categories})[1 + (a + c) % {ncat}]
FROM generate_series(1, {agencies}) a, generate_series(1, 3) c;
INSERT INTO inspector (id, agency_code, name, certificate_no, certificate_valid_until)
SELECT i, 'A' || lpad((1 + i % {agencies})::text, 2, '0'), '检查员' || i, 'CERT' || i, '2030-12-31'
FROM generate_series(1, {inspectors}) i;
INSERT INTO enterprise (uscc, name, district_code, industry_code, risk_class, established_on)
SELECT '91320402' || lpad(e::text, 10, '0'), '企业' || e, '320402', 'H62',
       (ARRAY['A','B','B','C','C','D'])[1 + {h_risk} % 6], DATE '2010-01-01'
FROM generate_series(1, {enterprises}) e;
INSERT INTO enterprise_risk_class (enterprise_uscc, valid_from, risk_class)
SELECT uscc, DATE '2010-01-01', risk_class FROM enterprise;
CREATE TEMP TABLE gen AS
SELECT i AS id,
       '91320402' || lpad((1 + {h_ent} % {enterprises})::text, 10, '0') AS uscc,
       1 + {h_agency} % {agencies} AS agency,
       DATE '2024-01-01' + ({h_day} % 1095)::int AS ws,
       ({h_len} % 14)::int AS len
FROM generate_series(1, {inspections}) i;
INSERT INTO inspection (enterprise_uscc, id, kind, status, agency_code, year, window_start,
                        window_end, visit_date, version)
SELECT uscc, id, 'planned',
       CASE WHEN ws < DATE '2026-06-01' THEN 'completed' ELSE 'scheduled' END,
       'A' || lpad(agency::text, 2, '0'), extract(year FROM ws)::int, ws, ws + len,
       CASE WHEN ws < DATE '2026-06-01' THEN ws ELSE NULL END, 1
FROM gen;
INSERT INTO inspection_matter (enterprise_uscc, inspection_id, matter_code, agency_code, category)
SELECT g.uscc, g.id, m.code, m.agency_code, m.category
FROM gen g JOIN matter m ON m.code = 'A' || lpad(g.agency::text, 2, '0') || '-' || (1 + g.id % 3);
INSERT INTO inspection_inspector (enterprise_uscc, inspection_id, inspector_id, booked_day)
SELECT g.uscc, g.id, 1 + ((g.id * 7 + k * 13) % {inspectors}),
       CASE WHEN g.ws < DATE '2026-06-01' THEN g.ws WHEN g.len = 0 THEN g.ws END
FROM gen g, generate_series(0, 1) k;
SELECT setval(pg_get_serial_sequence('inspection', 'id'), {inspections});
SELECT setval(pg_get_serial_sequence('inspector', 'id'), {inspectors});
DROP TABLE gen;
ANALYZE;
"""


async def generate(dsn: str, enterprises: int, inspections: int, seed: int) -> float:
    """Fill the scratch database; seconds taken."""
    sql = GENERATE.format(
        agencies=AGENCIES,
        inspectors=INSPECTORS,
        enterprises=enterprises,
        inspections=inspections,
        categories="[" + ",".join(f"'{c}'" for c in CATEGORIES) + "]",
        ncat=len(CATEGORIES),
        h_risk=_h("e", seed, 1),
        h_ent=_h("i", seed, 2),
        h_agency=_h("i", seed, 3),
        h_day=_h("i", seed, 4),
        h_len=_h("i", seed, 5),
    )
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        await conn.execute(sql)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def forget_detector_run(dsn: str, inspections: int) -> float:
    """Undo an earlier run's detector phase on a kept database (its inspections and findings)."""
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(
                "DELETE FROM conflict WHERE EXISTS "
                "(SELECT 1 FROM unnest(inspection_ids) x WHERE x > $1)",
                inspections,
            )
            await conn.execute("TRUNCATE event, consumer_cursor, handler_run CASCADE")
            for table, column in (
                ("inspection_inspector", "inspection_id"),
                ("inspection_matter", "inspection_id"),
                ("inspection", "id"),
            ):
                await conn.execute(f"DELETE FROM {table} WHERE {column} > $1", inspections)
        await conn.execute("VACUUM ANALYZE conflict, inspection, inspection_matter")
        return time.perf_counter() - started
    finally:
        await conn.close()


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def precheck_latency(
    url: str, enterprises: int, samples: int, seed: int
) -> tuple[list[float], list[float]]:
    """Pre-check timings (ms): load facts + bookings + evaluate a candidate for one enterprise."""
    settings = Settings(env="test", session_secret="s" * 40, token_pepper="p" * 40)
    engine = make_engine(url, settings)
    factory = make_sessionmaker(engine)
    book = policy_book()
    timings: list[float] = []
    inner: list[float] = []
    try:
        for k in range(samples + 50):
            n = 1 + ((k + 1) * 2654435761 + seed) % enterprises
            uscc = "91320402" + str(n).zfill(10)
            day = date(2026, 12, 1 + k % 20)
            started = time.perf_counter()
            async with factory() as session:
                candidate = InspectionFact(
                    id=-(k + 1),
                    agency_code="A01",
                    uscc=uscc,
                    premises_id=None,
                    categories=frozenset({"food_safety"}),
                    kind="unplanned",
                    basis="complaint",
                    status="pending_request",
                    window_start=day,
                    window_end=day,
                    inspector_ids=frozenset({1 + k % INSPECTORS, 2 + k % INSPECTORS}),
                    is_request=True,
                )
                await session.connection()  # BEGIN: a request's transaction is open already
                begun = time.perf_counter()
                # One round trip: enterprise, history and the candidate's bookings.
                loaded = await repo.load_facts(
                    session, uscc, repo.history_start(day.year), probe=candidate
                )
                assert loaded is not None
                evaluate(
                    candidate, loaded.history, loaded.enterprise, book.at(day), loaded.bookings
                )
                own = time.perf_counter() - begun
            if k >= 50:  # warm-up excluded
                timings.append((time.perf_counter() - started) * 1000)
                inner.append(own * 1000)
    finally:
        await engine.dispose()
    return timings, inner


async def detector_throughput(
    url: str, dsn: str, enterprises: int, inspections: int, events: int, workers: int, seed: int
) -> tuple[float, int, int]:
    """(events/s, findings recorded, events delivered) for new scheduled inspections."""
    conn = await asyncpg.connect(dsn)
    try:
        # New checks in Dec 2026, clustered on a few enterprises so that findings happen.
        rows = await conn.fetch(
            f"""
            INSERT INTO inspection (enterprise_uscc, id, kind, status, agency_code, year,
                                    window_start, window_end, version)
            SELECT '91320402' || lpad((1 + {_h("i", seed, 9)} % {enterprises})::text, 10, '0'),
                   {inspections} + i, 'planned', 'scheduled',
                   'A' || lpad((1 + i % {AGENCIES})::text, 2, '0'), 2026,
                   DATE '2026-12-01' + (i % 20), DATE '2026-12-01' + (i % 20) + 3, 1
            FROM generate_series(1, {events}) i
            RETURNING enterprise_uscc, id, agency_code
            """
        )
        await conn.execute(
            f"""
            INSERT INTO inspection_matter (enterprise_uscc, inspection_id, matter_code,
                                           agency_code, category)
            SELECT i.enterprise_uscc, i.id, m.code, m.agency_code, m.category
            FROM inspection i JOIN matter m ON m.code = i.agency_code || '-1'
            WHERE i.id > {inspections}
            """
        )
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('inspection', 'id'), {inspections + events})"
        )
        before = int(await conn.fetchval("SELECT count(*) FROM conflict"))
    finally:
        await conn.close()
    envelopes = [
        EventEnvelope(
            id=k,
            type="inspection.scheduled",
            type_version=1,
            aggregate_type="inspection",
            aggregate_id=str(r["id"]),
            aggregate_seq=1,
            enterprise_uscc=r["enterprise_uscc"],
            agency_codes=[r["agency_code"]],
            payload={"inspection_id": r["id"], "enterprise": r["enterprise_uscc"]},
            occurred_at=datetime.now(UTC),
        )
        for k, r in enumerate(rows)
    ]
    settings = Settings(
        env="test", session_secret="s" * 40, token_pepper="p" * 40, db_pool_size=workers
    )
    engine = make_engine(url, settings)
    factory = make_sessionmaker(engine)
    queue: asyncio.Queue[EventEnvelope] = asyncio.Queue()
    for e in envelopes:
        queue.put_nowait(e)

    async def worker() -> None:
        while not queue.empty():
            event = queue.get_nowait()
            async with factory() as session, session.begin():
                await detect(session, event)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - started
    await engine.dispose()
    conn = await asyncpg.connect(dsn)
    try:
        after = int(await conn.fetchval("SELECT count(*) FROM conflict"))
    finally:
        await conn.close()
    return len(envelopes) / elapsed, after - before, len(envelopes)


async def batched_throughput(
    url: str, dsn: str, enterprises: int, first_id: int, events: int, seed: int
) -> tuple[float, int, int, int]:
    """(events/s, findings, events, batch size) in the event worker's transaction shape.

    The relay (events/relay.py process_batch) hands a consumer up to ``event_batch_size``
    events in ONE transaction, one handler call after the other. Same here, for another
    --events new scheduled inspections, without the relay's cursor bookkeeping (its snapshot
    xmin bound waits for every open transaction of the shared server, which would measure
    other people's work).
    """
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f"""
            INSERT INTO inspection (enterprise_uscc, id, kind, status, agency_code, year,
                                    window_start, window_end, version)
            SELECT '91320402' || lpad((1 + {_h("i", seed, 10)} % {enterprises})::text, 10, '0'),
                   {first_id} + i, 'planned', 'scheduled',
                   'A' || lpad((1 + i % {AGENCIES})::text, 2, '0'), 2026,
                   DATE '2026-12-01' + (i % 20), DATE '2026-12-01' + (i % 20) + 3, 1
            FROM generate_series(1, {events}) i
            RETURNING enterprise_uscc, id, agency_code
            """
        )
        await conn.execute(
            f"""
            INSERT INTO inspection_matter (enterprise_uscc, inspection_id, matter_code,
                                           agency_code, category)
            SELECT i.enterprise_uscc, i.id, m.code, m.agency_code, m.category
            FROM inspection i JOIN matter m ON m.code = i.agency_code || '-1'
            WHERE i.id > {first_id}
            """
        )
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('inspection', 'id'), {first_id + events})"
        )
        before = int(await conn.fetchval("SELECT count(*) FROM conflict"))
    finally:
        await conn.close()
    envelopes = [
        EventEnvelope(
            id=k,
            type="inspection.scheduled",
            type_version=1,
            aggregate_type="inspection",
            aggregate_id=str(r["id"]),
            aggregate_seq=1,
            enterprise_uscc=r["enterprise_uscc"],
            agency_codes=[r["agency_code"]],
            payload={"inspection_id": r["id"], "enterprise": r["enterprise_uscc"]},
            occurred_at=datetime.now(UTC),
        )
        for k, r in enumerate(rows)
    ]
    settings = Settings(env="test", session_secret="s" * 40, token_pepper="p" * 40)
    batch = settings.event_batch_size
    engine = make_engine(url, settings)
    factory = make_sessionmaker(engine)
    started = time.perf_counter()
    for at in range(0, len(envelopes), batch):
        async with factory() as session, session.begin():
            for event in envelopes[at : at + batch]:
                await detect(session, event)
    elapsed = time.perf_counter() - started
    await engine.dispose()
    conn = await asyncpg.connect(dsn)
    try:
        after = int(await conn.fetchval("SELECT count(*) FROM conflict"))
    finally:
        await conn.close()
    return len(envelopes) / elapsed, after - before, len(envelopes), batch


async def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--enterprises", type=int, default=200_000)
    parser.add_argument("--inspections", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--reuse",
        metavar="DATABASE",
        help="measure on a database kept by an earlier run (same sizes and seed; implies --keep)",
    )
    args = parser.parse_args()
    name = args.reuse or "bench_detector_" + uuid.uuid4().hex[:8]
    dsn = f"{args.pg}/{name}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    if args.reuse:
        args.keep = True
    else:
        admin = await asyncpg.connect(args.pg + "/postgres")
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
    try:
        if args.reuse:
            seconds = await forget_detector_run(dsn, args.inspections)
        else:
            await asyncio.to_thread(upgrade_to_head, url)
            seconds = await generate(dsn, args.enterprises, args.inspections, args.seed)
        conn = await asyncpg.connect(dsn)
        size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
        await conn.close()
        print(
            f"data: {args.enterprises:,} enterprises, {args.inspections:,} inspections "
            f"(2024-2026) generated in {seconds:.1f} s; database {size}"
        )
        timings, inner = await precheck_latency(url, args.enterprises, args.samples, args.seed)
        print(
            f"pre-check ({len(timings)} enterprises): p50 {statistics.median(timings):.2f} ms, "
            f"p99 {pct(timings, 99):.2f} ms, max {max(timings):.2f} ms  (target p99 < 10 ms)"
        )
        print(
            f"  of which load + rules in an open transaction: p50 {statistics.median(inner):.2f}"
            f" ms, p99 {pct(inner, 99):.2f} ms, max {max(inner):.2f} ms"
        )
        rss, hwm = rss_mb()
        print(f"memory after pre-check: RSS {rss:.0f} MiB, peak {hwm:.0f} MiB")
        rate, findings, delivered = await detector_throughput(
            url, dsn, args.enterprises, args.inspections, args.events, args.workers, args.seed
        )
        print(
            f"detector: {delivered:,} inspection.scheduled events, {args.workers} workers: "
            f"{rate:,.0f} events/s, {findings:,} findings recorded  (target >= 1,000 events/s)"
        )
        rss, hwm = rss_mb()
        print(f"memory after detector: RSS {rss:.0f} MiB, peak {hwm:.0f} MiB")
        rate, findings, delivered, batch = await batched_throughput(
            url, dsn, args.enterprises, args.inspections + args.events, args.events, args.seed
        )
        print(
            f"detector as the event worker runs it ({batch} events per transaction): "
            f"{delivered:,} events, {rate:,.0f} events/s, {findings:,} findings recorded"
        )
        rss, hwm = rss_mb()
        print(f"memory after relay: RSS {rss:.0f} MiB, peak {hwm:.0f} MiB")
    finally:
        if not args.keep:
            admin = await asyncpg.connect(args.pg + "/postgres")
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
