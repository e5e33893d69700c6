"""Benchmark of the draw through the service and PostgreSQL.

``PYTHONPATH=src:. python -m bench.draw_db_bench --n 1000000 --fixed-count 2000 [--ratios]``
``[--template ih_bench_tpl_1m] [--profile DIR]``

Creates a scratch database on 127.0.0.1:5432, loads n enterprises by COPY, 200 inspectors, files
and submits a plan with one item over every enterprise, then times `plans.service.draw_plan`
(population in SQL, draw, draw record, inspections with codes and events, all in one
transaction) and `verify_draw` on the stored record. Peak RSS is this process's.

`--template NAME` keeps a loaded database NAME (created and loaded on first use, left in place) and
clones each run's scratch database from it (CREATE DATABASE ... TEMPLATE, seconds instead of a
minute of COPY). `--profile DIR` writes pyinstrument HTML/text profiles of the draw and the verify.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg

import inspection_hub.plans.service as service
from bench.datagen import generate_candidates
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.config import Settings
from inspection_hub.db.migrate import upgrade_to_head_async
from inspection_hub.db.session import make_engine, make_sessionmaker
from inspection_hub.kit.timeutil import local_today
from inspection_hub.paths import config_dir
from inspection_hub.plans.schemas import PlanCreate

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def load_average() -> str:
    """The 1-minute load average (this machine has 2 cores; other work skews the figures)."""
    return f"load {os.getloadavg()[0]:.2f}"


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def load(dsn: str, n: int, inspectors: int) -> None:
    """COPY n enterprises, one agency with a matter and the roster."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO agency (code, name) VALUES ('SCJG', '区市场监管局')")
        await conn.execute(
            "INSERT INTO matter (code, agency_code, name, category) "
            "VALUES ('SCJG-001', 'SCJG', '食品安全检查', 'food_safety')"
        )
        est = date(2010, 1, 1)
        await conn.copy_records_to_table(
            "enterprise",
            records=(
                (u, "企业" + u[-6:], u[2:8], "F5212", rc, est)
                for u, rc in generate_candidates(n, 1)
            ),
            columns=[
                "uscc",
                "name",
                "district_code",
                "industry_code",
                "risk_class",
                "established_on",
            ],
        )
        until = date(local_today().year + 2, 12, 31)
        await conn.copy_records_to_table(
            "inspector",
            records=[("SCJG", f"检查员{i}", f"JS3204{i:08d}", until) for i in range(inspectors)],
            columns=["agency_code", "name", "certificate_no", "certificate_valid_until"],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def _prepare_template(admin: asyncpg.Connection, template: str, n: int, k: int) -> None:
    exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", template)
    if exists:
        return
    await admin.execute(f"CREATE DATABASE {template}")
    try:
        await upgrade_to_head_async(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{template}")
        t = time.perf_counter()
        await load(f"postgresql://postgres@127.0.0.1:5432/{template}", n, k)
        print(f"template {template}: loaded {n:,} enterprises in {time.perf_counter() - t:.1f} s")
    except BaseException:
        await admin.execute(f"DROP DATABASE IF EXISTS {template} WITH (FORCE)")
        raise


class _Profile:
    """A pyinstrument profile around a block when a directory is given, else nothing."""

    def __init__(self, directory: Path | None, label: str) -> None:
        self.directory, self.label = directory, label
        self.profiler: Any = None

    def __enter__(self) -> None:
        if self.directory is not None:
            from pyinstrument import Profiler

            self.profiler = Profiler(async_mode="enabled")
            self.profiler.start()

    def __exit__(self, *exc: object) -> None:
        if self.profiler is not None and self.directory is not None:
            self.profiler.stop()
            self.directory.mkdir(parents=True, exist_ok=True)
            text = self.profiler.output_text(unicode=True, show_all=False)
            (self.directory / f"{self.label}.txt").write_text(text, encoding="utf-8")
            (self.directory / f"{self.label}.html").write_text(
                self.profiler.output_html(), encoding="utf-8"
            )


async def run(args: argparse.Namespace) -> None:
    """Create the scratch database, load, draw, verify, drop."""
    name = f"ih_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    if args.template:
        await _prepare_template(admin, args.template, args.n, args.inspectors)
        t = time.perf_counter()
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {args.template}")
        print(f"cloned {args.template} in {time.perf_counter() - t:.1f} s")
    else:
        await admin.execute(f"CREATE DATABASE {name}")
    dsn = f"postgresql://postgres@127.0.0.1:5432/{name}"
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    tmp = Path(tempfile.mkdtemp(prefix="ih-bench-"))
    try:
        if not args.template:
            await upgrade_to_head_async(url)
            t = time.perf_counter()
            await load(dsn, args.n, args.inspectors)
            print(f"loaded {args.n:,} enterprises by COPY in {time.perf_counter() - t:.1f} s")
        year = local_today().year
        # a workload cap high enough for the sample (see bench/draw_bench.py)
        k_guess = args.fixed_count if not args.ratios else math.ceil(0.047 * args.n)
        cap = math.ceil(2 * k_guess / args.inspectors * 1.2) + 1
        policy = (config_dir() / "policy.toml").read_text(encoding="utf-8")
        policy = policy.replace("workload_cap_per_draw = 20", f"workload_cap_per_draw = {cap}")
        (tmp / "policy.toml").write_text(policy, encoding="utf-8")
        settings = Settings(env="test", data_dir=tmp, policy_file=str(tmp / "policy.toml"))
        engine = make_engine(url, settings)
        sm = make_sessionmaker(engine)
        actor = Principal(0, "bench", "bench", Role.scheduler, "SCJG")
        sampling = {} if args.ratios else {"fixed_count": args.fixed_count}
        body = PlanCreate.model_validate(
            {
                "year": year,
                "title": "bench",
                "items": [
                    {
                        "matters": ["SCJG-001"],
                        "sampling": sampling,
                        "window": {"start": f"{year}-01-01", "end": f"{year}-12-31"},
                    }
                ],
            }
        )
        policy_now = service.policy_book(settings).at(local_today())
        async with sm() as s, s.begin():
            plan = await service.create_plan(s, actor, body, policy_now)
            await service.submit_plan(s, actor, plan.id, None)
        print(f"workload cap {cap}; baseline peak RSS {peak_rss_mib():.0f} MiB")
        t, cpu = time.perf_counter(), time.process_time()
        with _Profile(args.profile, "draw"):
            async with sm() as s, s.begin():
                _, draws = await service.draw_plan(s, actor, plan.id, None, settings)
        took, cpu = time.perf_counter() - t, time.process_time() - cpu
        print(
            f"draw through the service: {took:.2f} s (this process's CPU {cpu:.2f} s), "
            f"selected {draws[0].selected_count:,} "
            f"of {sum(draws[0].population_size.values()):,}, peak RSS {peak_rss_mib():.0f} MiB, "
            f"{load_average()}"
        )
        t, cpu = time.perf_counter(), time.process_time()
        with _Profile(args.profile, "verify"):
            async with sm() as s:
                draw = await service.get_draw(s, None, draws[0].id, full=True)
                outcome = service.verify_draw(draw)
        print(
            f"verify (stored record -> verify_export): {time.perf_counter() - t:.2f} s "
            f"(CPU {time.process_time() - cpu:.2f} s),"
            f" match={outcome.match}, peak RSS {peak_rss_mib():.0f} MiB, {load_average()}"
        )
        await engine.dispose()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--inspectors", type=int, default=200)
    parser.add_argument("--fixed-count", type=int, default=2000)
    parser.add_argument("--ratios", action="store_true", help="default ratios instead")
    parser.add_argument("--template", default=None, help="loaded template database to clone")
    parser.add_argument("--profile", type=Path, default=None, help="write profiles here")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
