"""Execution report for one year with N inspections (COPY-generated).

Run: ``python -m bench.report_bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import date, timedelta

import asyncpg
from tests.fixtures.database import TestDatabase

from inspection_hub.config import Settings
from inspection_hub.db.migrate import upgrade_to_head_async
from inspection_hub.db.session import make_engine, make_sessionmaker
from inspection_hub.kit.synth import make_uscc
from inspection_hub.reports.service import execution_report

AGENCIES = [f"AG{i:02d}" for i in range(20)]
OUTCOMES = ["no_issue"] * 6 + ["rectification_ordered", "penalized", "referred"]


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

        def rows():  # type: ignore[no-untyped-def]
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
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--enterprises", type=int, default=200_000)
    args = parser.parse_args()
    db = TestDatabase()
    url = await db.create()
    try:
        await upgrade_to_head_async(url)
        await load(url, args.n, args.enterprises)
        engine = make_engine(url, Settings(env="test"))
        factory = make_sessionmaker(engine)
        for run in range(3):
            async with factory() as session:
                t = time.perf_counter()
                rows = await execution_report(session, 2026, today=date(2026, 7, 1))
                took = time.perf_counter() - t
            print(f"execution report run {run + 1}: {took:.2f} s ({len(rows)} agencies)")
        await engine.dispose()
    finally:
        await db.drop()


if __name__ == "__main__":
    asyncio.run(main())
