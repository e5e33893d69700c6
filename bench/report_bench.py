"""Execution report for one year with N inspections (COPY-generated), plus surveys (30 % of the
completed inspections) and findings in the conflict store (5 %).

Run: ``python -m bench.report_bench`` (a throwaway database). ``--keep`` leaves the loaded
database in place and prints its URL; ``--url URL`` reuses one (no load), ``--explain`` prints
EXPLAIN ANALYZE of each report query.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
from tests.fixtures.database import TestDatabase

from inspection_hub.config import Settings
from inspection_hub.db.migrate import upgrade_to_head_async
from inspection_hub.db.session import make_engine, make_sessionmaker
from inspection_hub.kit.synth import make_uscc
from inspection_hub.kit.timeutil import LOCAL_TZ
from inspection_hub.reports.service import execution_report

AGENCIES = [f"AG{i:02d}" for i in range(20)]
OUTCOMES = ["no_issue"] * 6 + ["rectification_ordered", "penalized", "referred"]


SURVEYS_SQL = """
INSERT INTO survey (enterprise_uscc, inspection_id, agency_code, year, inspection_kind,
                    status, due_at, discrepancies)
SELECT enterprise_uscc, id, agency_code, year, kind,
       (ARRAY['pending', 'sent', 'answered', 'answered', 'expired'])[1 + id % 5],
       now(), CAST(CASE WHEN id % 50 = 0 THEN '{visit_denied}' ELSE '{}' END
            AS varchar[])
FROM inspection WHERE status = 'completed' AND id % 10 < 3
"""
FINDINGS_SQL = """
INSERT INTO conflict (enterprise_uscc, kind, finding_key, inspection_ids,
                      agency_codes, status, resolution, resolved_at)
SELECT enterprise_uscc, k.kind, k.kind || ':' || id, ARRAY[id],
       CASE WHEN k.kind = 'survey_discrepancy' THEN CAST('{}' AS varchar[])
            ELSE ARRAY[agency_code] END,
       CASE WHEN id % 3 = 0 THEN 'resolved' ELSE 'open' END,
       CASE WHEN id % 3 = 0 THEN 'justified' END,
       CASE WHEN id % 3 = 0 THEN now() END
FROM inspection
CROSS JOIN LATERAL (SELECT (ARRAY['repeat', 'trace_check_failed',
        'unregistered_visit', 'survey_discrepancy', 'cap_exceeded'])[1 + id % 5]
        AS kind) k
WHERE id % 20 = 7
"""


async def load(url: str, n: int, enterprises: int) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.executemany(
            "INSERT INTO agency (code, name) VALUES ($1, $2)", [(a, a) for a in AGENCIES]
        )
        usccs = [make_uscc("350102", i) for i in range(enterprises)]
        await conn.copy_records_to_table(
            "enterprise",
            records=((u, u, "350102", "5211", "ABCD"[i % 4]) for i, u in enumerate(usccs)),
            columns=["uscc", "name", "district_code", "industry_code", "risk_class"],
        )
        rng = random.Random(7)
        start = date(2026, 1, 1)

        def rows() -> Iterator[tuple[Any, ...]]:
            for i in range(1, n + 1):
                ws = start + timedelta(days=rng.randrange(330))
                status = rng.choice(("completed",) * 7 + ("scheduled", "cancelled", "merged"))
                yield (
                    usccs[rng.randrange(enterprises)], i,
                    rng.choice(("planned",) * 7 + ("unplanned", "unplanned", "joint")),
                    status, AGENCIES[i % len(AGENCIES)], 2026, ws, ws + timedelta(days=20),
                    rng.choice(OUTCOMES) if status == "completed" else None,
                )  # fmt: skip

        t = time.perf_counter()
        await conn.copy_records_to_table(
            "inspection",
            records=rows(),
            columns=["enterprise_uscc", "id", "kind", "status", "agency_code", "year",
                     "window_start", "window_end", "outcome"],
        )  # fmt: skip
        print(f"COPY {n:,} inspections: {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        # Surveys of 30 % of the completed inspections, findings of 5 % (kinds as stored).
        await conn.execute(SURVEYS_SQL)
        await conn.execute(FINDINGS_SQL)
        print(f"surveys and findings: {time.perf_counter() - t:.1f} s", flush=True)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def explain(url: str, verbose: bool) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of each report query, as the report runs it."""
    from sqlalchemy import text

    from inspection_hub.reports import service

    engine = make_engine(url, Settings(env="test"))
    caps = service._caps(2026)
    params = {"year": 2026, "today": date(2026, 7, 1), "classes": list(caps),
              "caps": [caps[c] for c in caps], "min_cap": min(caps.values()),
              "year_from": datetime(2026, 1, 1, tzinfo=LOCAL_TZ),
              "year_to": datetime(2027, 1, 1, tzinfo=LOCAL_TZ)}  # fmt: skip
    builders = [service._inspections_sql, service._distribution_sql, service._surveys_sql,
                service._findings_sql, service._plans_sql]  # fmt: skip
    if hasattr(service, "_requests_sql"):
        builders.append(service._requests_sql)
    async with engine.connect() as conn:
        await conn.execute(text("SET work_mem = '64MB'"))
        await conn.execute(text("SET jit = off"))
        for agency in (None, "AG03"):
            for build in builders:
                sql = build(agency)
                used = {k: v for k, v in {**params, "agency": agency}.items() if f":{k}" in sql}
                plan = await conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql), used)
                print(f"--- {build.__name__} agency={agency}")
                lines = [r[0] for r in plan]
                print("\n".join(lines) if verbose else lines[-1])
    await engine.dispose()


async def run(url: str) -> None:
    engine = make_engine(url, Settings(env="test"))
    factory = make_sessionmaker(engine)
    for agency in (None, None, None, "AG03"):
        async with factory() as session:
            t = time.perf_counter()
            rows = await execution_report(session, 2026, agency, today=date(2026, 7, 1))
            took = time.perf_counter() - t
        print(f"execution report agency={agency}: {took:.2f} s ({len(rows)} agencies)")
    await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--enterprises", type=int, default=200_000)
    parser.add_argument("--url", help="reuse a loaded database")
    parser.add_argument("--keep", action="store_true", help="keep the loaded database")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="whole plans, not only times")
    args = parser.parse_args()
    if args.url:
        if args.explain:
            await explain(args.url, args.verbose)
        await run(args.url)
        return
    db = TestDatabase()
    url = await db.create()
    try:
        await upgrade_to_head_async(url)
        await load(url, args.n, args.enterprises)
        if args.explain:
            await explain(url, args.verbose)
        await run(url)
    finally:
        if args.keep:
            print(f"kept: {url}")
        else:
            await db.drop()


if __name__ == "__main__":
    asyncio.run(main())
