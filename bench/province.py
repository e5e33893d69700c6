"""Province-scale run: 10,000,000 enterprises and 30,000,000 inspections, pre-check and report.

    PYTHONPATH=$PWD/src:$PWD python -m bench.province [--enterprises 10000000] [--keep] [--dsn DSN]

Loads the seeded data set (bench/common.py: valid USCCs by COPY, three inspections each over the
last three years with their matters, set-based), secondary indexes built after the load, then
times in process: the pre-check (facts.load_enterprise_rows + approvals build_precheck) for
--samples enterprises, the enterprise-year read behind GET /v1/enterprises/{uscc}/inspections, and
the execution report of the current year. Prints database size and this process's peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from datetime import date

import asyncpg

from bench.common import (
    loadavg,
    proc_status_mib,
    sample_keys,
    scratch_database,
    seed_inspection_history,
    sqlalchemy_url,
)


def _pct(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100)[p - 1] if len(values) > 2 else max(values)


async def _drop_secondary_indexes(dsn: str, tables: tuple[str, ...]) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i "
            "JOIN pg_class c ON c.relname = i.indexname "
            "JOIN pg_index x ON x.indexrelid = c.oid "
            "WHERE i.schemaname = 'public' AND i.tablename = ANY($1) AND NOT x.indisprimary "
            "AND NOT x.indisunique",
            list(tables),
        )
        for r in rows:
            await conn.execute(f'DROP INDEX "{r["indexname"]}"')
        return [r["indexdef"] for r in rows]
    finally:
        await conn.close()


async def _create_indexes(dsn: str, definitions: list[str]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        for definition in definitions:
            await conn.execute(definition)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> None:
    """Load, index, measure."""
    print(f"# load average at start {loadavg()}", flush=True)
    if args.dsn:
        await _measure(args.dsn, args.samples)
        return
    async with scratch_database(keep=args.keep) as dsn:
        print(f"database {dsn}", flush=True)
        started = time.perf_counter()
        definitions = await _drop_secondary_indexes(dsn, ("inspection", "inspection_matter"))
        timings = await seed_inspection_history(dsn, args.enterprises, 3, analyze=False)
        t = time.perf_counter()
        await _create_indexes(dsn, definitions)
        timings["indexes_and_analyze_s"] = time.perf_counter() - t
        conn = await asyncpg.connect(dsn)
        size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM enterprise) AS e, (SELECT count(*) FROM inspection) AS i"
        )
        await conn.close()
        print(
            f"loaded {counts['e']:,} enterprises, {counts['i']:,} inspections in "
            f"{time.perf_counter() - started:.0f} s {timings}; database {size}; "
            f"load {loadavg()}",
            flush=True,
        )
        await _measure(dsn, args.samples)


async def _measure(dsn: str, samples: int) -> None:
    """Pre-check, enterprise-year read and execution report timings on a loaded database."""
    from inspection_hub.approvals.precheck import build_precheck
    from inspection_hub.auth.principal import Principal, Role
    from inspection_hub.config import Settings
    from inspection_hub.conflicts.facts import load_enterprise_rows
    from inspection_hub.conflicts.service import policy_book
    from inspection_hub.db.session import make_engine, make_sessionmaker
    from inspection_hub.inspections.service import enterprise_year
    from inspection_hub.kit.timeutil import local_today
    from inspection_hub.reports.service import execution_report

    usccs, _ = await sample_keys(dsn, samples)
    engine = make_engine(sqlalchemy_url(dsn), Settings(env="test"))
    factory = make_sessionmaker(engine)
    book = policy_book()
    today = local_today()
    pre: list[float] = []
    reads: list[float] = []
    # The code path of GET /v1/check-requests/{id} and of the submission's pre-check: the
    # enterprise's facts around the year in one statement, then the rules (build_precheck).
    viewer = Principal(1, "bench", "bench", Role.approver, "SCJG")
    for k, uscc in enumerate(usccs):
        day = date(today.year, 12, 1 + k % 20)
        t = time.perf_counter()
        async with factory() as session:
            loaded = await load_enterprise_rows(session, uscc, day.year)
            assert loaded is not None
            build_precheck(
                loaded,
                viewer,
                book.at(day),
                request_id=k + 1,
                agency_code="SCJG",
                categories=frozenset({"food_safety"}),
                basis="complaint",
                window_start=day,
                window_end=day,
            )
        pre.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        async with engine.connect() as sa_conn:  # a driver connection, as the route gets one
            conn = (await sa_conn.get_raw_connection()).driver_connection
            await enterprise_year(conn, uscc, today.year, today, "http://bench")
        reads.append((time.perf_counter() - t) * 1000)
    pre, reads = pre[20:], reads[20:]  # warm-up
    print(
        f"pre-check ({len(pre)} enterprises): p50 {statistics.median(pre):.2f} ms, "
        f"p99 {_pct(pre, 99):.2f} ms; enterprise-year read p50 "
        f"{statistics.median(reads):.2f} ms, p99 {_pct(reads, 99):.2f} ms; load {loadavg()}",
        flush=True,
    )
    for run_no in range(2):
        t = time.perf_counter()
        async with factory() as session:
            rows = await execution_report(session, today.year, today=today)
        print(
            f"execution report {today.year} run {run_no + 1}: "
            f"{time.perf_counter() - t:.2f} s ({len(rows)} agencies); load {loadavg()}",
            flush=True,
        )
    await engine.dispose()
    peak = proc_status_mib(os.getpid(), "VmHWM")
    print(f"peak RSS of this process {peak:.0f} MiB")


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enterprises", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--dsn", help="measure an already loaded (kept) database; load nothing")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
