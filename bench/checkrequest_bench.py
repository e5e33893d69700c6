"""Benchmark: check requests submitted per second through HTTP, with the pre-check.

    PYTHONPATH=$PWD/src:$PWD python bench/checkrequest_bench.py \
        --enterprises 1000000 --inspections 5000000      # the issue's size (loading takes minutes)
    PYTHONPATH=$PWD/src:$PWD python bench/checkrequest_bench.py   # default: 100k / 500k

What it does, in one run:
1. creates a fresh database on the PostgreSQL at --pg (default 127.0.0.1:5432), migrates it and
   loads N enterprises (kit.synth USCCs, streamed to COPY) and M inspections with their matters
   (generated set-based in PostgreSQL, seeded with setseed: same sizes give the same data);
2. starts the app under uvicorn (uvloop, httptools, no access log, one worker) in a subprocess,
   and a bare FastAPI endpoint doing one asyncpg insert in a transaction (the ceiling);
3. drives both with `wrk -t1 -c32` (POST bodies rotate over many enterprises) in alternating
   slices (`--slices`, default 4, of `--seconds / slices` each: ceiling, submissions, ceiling,
   ...), so that the machine's drifting speed weighs on both alike, and reports the slices' mean
   req/s, median p50 and worst p99 and the CPU per request over all of them; then wrk again,
   paced to --rate req/s over 64 connections (its delay() hook), for the latency at a fixed
   offered rate.
Targets (issue 5): submit throughput >= 30 % of the ceiling; p99 < 50 ms at 200 req/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
PEPPER = "bench-pepper-" + "p" * 40


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


async def create_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


async def seed(
    dsn: str, n_enterprises: int, n_inspections: int, seed_value: int
) -> tuple[str, list[str]]:
    """Load the data; return a scheduler's token and a sample of USCCs to file requests for."""
    from inspection_hub.auth.tokens import hash_token, new_token
    from inspection_hub.kit.synth import enterprises

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """
            INSERT INTO agency (code, name)
            VALUES ('SCJG', '区市场监管局'), ('YJGL', '区应急管理局');
            INSERT INTO matter (code, agency_code, name, category) VALUES
              ('SCJG-001', 'SCJG', '食品安全检查', 'food_safety'),
              ('SCJG-002', 'SCJG', '价格检查', 'pricing'),
              ('YJGL-001', 'YJGL', '安全生产检查', 'work_safety');
            """
        )
        started = time.perf_counter()
        columns = ("uscc", "name", "district_code", "industry_code", "risk_class", "established_on")
        sample: list[str] = []
        rng = random.Random(seed_value)

        def rows() -> Any:
            for e in enterprises(n_enterprises, seed=seed_value):
                if rng.random() < 20_000 / max(n_enterprises, 1):
                    sample.append(e["uscc"])
                yield tuple(e[c] for c in columns)

        await conn.copy_records_to_table("enterprise", records=rows(), columns=list(columns))
        await conn.execute(
            "INSERT INTO enterprise_risk_class (enterprise_uscc, valid_from, risk_class) "
            "SELECT uscc, DATE '1900-01-01', risk_class FROM enterprise"
        )
        log(f"enterprises: {n_enterprises:,} in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        # Bulk load without per-row FK triggers (the generated data is consistent by construction).
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            """
            CREATE TEMP TABLE enterprise_no AS
                SELECT row_number() OVER (ORDER BY uscc) AS n, uscc FROM enterprise;
            CREATE INDEX ON enterprise_no (n);
            ANALYZE enterprise_no;
            """
        )
        await conn.execute("SELECT setseed($1)", (seed_value % 1000) / 1000.0)
        # Set-based generation: random enterprise, agency, window in 2025-2027, status by date.
        await conn.execute(
            """
            INSERT INTO inspection (enterprise_uscc, kind, status, agency_code, year,
                                    window_start, window_end, visit_date, outcome)
            SELECT e.uscc, g.kind, g.status, g.agency, extract(year FROM g.ws)::smallint,
                   g.ws, g.ws + 10,
                   CASE WHEN g.status = 'completed' THEN g.ws + 3 END,
                   CASE WHEN g.status = 'completed' THEN 'no_issue' END
            FROM (
                SELECT (1 + floor(random() * $2))::bigint AS n,
                       CASE WHEN random() < 0.7 THEN 'planned' ELSE 'unplanned' END AS kind,
                       CASE WHEN random() < 0.5 THEN 'SCJG' ELSE 'YJGL' END AS agency,
                       d.ws,
                       CASE WHEN d.ws < DATE '2026-11-20' THEN 'completed' ELSE 'scheduled' END
                           AS status
                FROM generate_series(1, $1) s,
                     LATERAL (SELECT DATE '2025-06-01' + (floor(random() * 900))::int + s * 0
                              AS ws) d
            ) g JOIN enterprise_no e ON e.n = g.n
            """,
            n_inspections,
            n_enterprises,
        )
        await conn.execute(
            """
            INSERT INTO inspection_matter (enterprise_uscc, inspection_id, matter_code,
                                           agency_code, category)
            SELECT enterprise_uscc, id,
                   CASE agency_code WHEN 'SCJG' THEN 'SCJG-001' ELSE 'YJGL-001' END, agency_code,
                   CASE agency_code WHEN 'SCJG' THEN 'food_safety' ELSE 'work_safety' END
            FROM inspection
            """
        )
        await conn.execute("SET session_replication_role = DEFAULT")
        await conn.execute("ANALYZE")
        log(f"inspections: {n_inspections:,} (+ matters) in {time.perf_counter() - started:.1f}s")
        user_id = await conn.fetchval(
            "INSERT INTO user_account (username, display_name, role, agency_code) "
            "VALUES ('bench.scheduler', '调度员', 'scheduler', 'SCJG') RETURNING id"
        )
        token = new_token()
        await conn.execute(
            "INSERT INTO api_token (user_id, token_hash, prefix) VALUES ($1, $2, $3)",
            user_id,
            hash_token(token, PEPPER),
            token[:10],
        )
        await conn.execute(
            "CREATE TABLE bench_ceiling (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
    finally:
        await conn.close()
    return token, sample


async def seed_prior_requests(dsn: str, n: int) -> None:
    """A history of n earlier check requests (a quarter still pending, the rest rejected), with
    their events and audit rows, then ANALYZE: the service is measured on tables with history
    and statistics, as in production, not on an empty check_request table (where a plan made
    while it is empty would scan it whole until the first autoanalyze)."""
    from bench.approval_bench import seed_requests

    if n <= 0:
        return
    await seed_requests(dsn, n)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE check_request SET status = 'rejected', version = 2, decided_at = now(), "
            "decision_comment = 'bench history' WHERE id % 4 <> 0"
        )
        await conn.execute("VACUUM ANALYZE check_request")
    finally:
        await conn.close()


# The ceiling app lives in bench/ceiling_app.py (no postponed annotations: FastAPI reads them).


def start_server(target: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    deadline = time.time() + 30
    import httpx

    while time.time() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{target} did not start")


def request_bodies(usccs: list[str], n: int) -> list[str]:
    from inspection_hub.kit.timeutil import local_today

    start = local_today() + timedelta(days=3)
    bodies = []
    for i in range(n):
        s = start + timedelta(days=i % 20)
        bodies.append(
            json.dumps(
                {
                    "agency": "SCJG",
                    "enterprise": usccs[i % len(usccs)],
                    "matters": ["SCJG-001"],
                    "basis": "complaint",
                    "basis_ref": f"投诉编号 2026-{i}",
                    "reason": "群众投诉",
                    "window": {"start": s.isoformat(), "end": (s + timedelta(days=5)).isoformat()},
                    "emergency": False,
                },
                ensure_ascii=False,
            )
        )
    return bodies


LUA = """
local bodies = {}
for line in io.lines("%s") do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "%s"
request = function()
  i = i + 1
  return wrk.format(nil, "%s", nil, bodies[(i %% #bodies) + 1])
end
"""


def parse_wrk(out: str) -> dict[str, float]:
    """req/s, p50 and p99 (ms) and the failed answers (non-2xx plus socket errors) from
    `wrk --latency` output."""
    result: dict[str, float] = {"errors": 0.0}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(parts[1])
        elif parts[:1] in (["50%"], ["50.000%"]):
            result["p50_ms"] = _ms(parts[1])
        elif parts[:1] in (["99%"], ["99.000%"]):
            result["p99_ms"] = _ms(parts[1])
        elif "Non-2xx" in line:
            result["non_2xx"] = float(parts[-1])
            result["errors"] += result["non_2xx"]
        elif "Socket errors" in line:
            result["errors"] += sum(float(x.strip(",")) for x in parts if x.strip(",").isdigit())
    return result


def run_wrk(
    port: int, path: str, auth: str, bodies_file: Path, seconds: int, conns: int
) -> dict[str, float]:
    script = bodies_file.with_suffix(".lua")
    script.write_text(LUA % (bodies_file, auth, path))
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{conns}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return parse_wrk(out)


def _ms(value: str) -> float:
    for suffix, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def combined(slices: list[dict[str, float]]) -> dict[str, float]:
    """Equal-length wrk slices as one run: the mean rate, the median p50, the worst p99, the
    failures summed, and CPU per request over all of them."""
    answered = [max(x.get("rps", 0.0), 1e-9) for x in slices]
    out = {
        "rps": round(statistics.fmean(x.get("rps", 0.0) for x in slices), 2),
        "p50_ms": statistics.median(x["p50_ms"] for x in slices),
        "p99_ms": max(x["p99_ms"] for x in slices),
        "errors": sum(x.get("errors", 0.0) for x in slices),
        "non_2xx": sum(x.get("non_2xx", 0.0) for x in slices),
    }
    for key in ("server_cpu_ms", "db_cpu_ms"):
        weighted = sum(x[key] * n for x, n in zip(slices, answered, strict=True))
        out[key] = round(weighted / sum(answered), 2)
    return out


def with_cpu(dsn: str, server_pid: int, seconds: int, run: Any) -> dict[str, float]:
    """`run()` (a wrk load returning its figures) plus the CPU the server process and the
    database's backends used per request (ms): steadier than the rate on a shared machine."""
    from bench.approval_bench import cpu_during

    result, app, db = cpu_during(dsn, server_pid, run)
    result = dict(result)
    answered = max(result.get("rps", 0.0) * seconds, 1.0)
    result["server_cpu_ms"] = round(app * 1000 / answered, 2)
    result["db_cpu_ms"] = round(db * 1000 / answered, 2)
    return result


# The submission script, each connection waiting a random 0..2 x interval ms between requests.
PACED_LUA = (
    LUA
    + """
local interval = %f  -- ms between one connection's requests: connections / rate
delay = function()
  return math.random(0, math.floor(2 * interval))
end
"""
)


def paced(
    port: int, path: str, auth: str, bodies_file: Path, rate: int, seconds: int, conns: int = 64
) -> dict[str, float]:
    """Latency at a fixed offered rate: wrk with `conns` connections, each waiting a random
    0..2x(conns/rate) ms before its next request (on average `rate` requests/s in all while
    answers come faster than that interval). A load generator in C, so it takes little of the
    CPU the service and PostgreSQL share (a Python generator took a core of its own)."""
    script = bodies_file.with_name("paced.lua")
    script.write_text(PACED_LUA % (bodies_file, auth, path, 1000.0 * conns / rate))
    cmd = [
        "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", str(script),
        f"http://127.0.0.1:{port}{path}",
    ]  # fmt: skip
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {"offered_rps": float(rate), **parse_wrk(out)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--enterprises", type=int, default=100_000)
    parser.add_argument("--inspections", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument(
        "--slices", type=int, default=4, help="ceiling and submissions alternate in these slices"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument(
        "--prior-requests",
        type=int,
        default=None,
        help="earlier check requests on file before the run (default: half the enterprises)",
    )
    parser.add_argument("--pool-size", type=int, default=10)  # the service default
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is required (apt-get install wrk)")

    name = f"ih_bench_{uuid.uuid4().hex[:8]}"
    admin_dsn = args.pg + "/postgres"
    dsn = f"{args.pg}/{name}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    asyncio.run(create_database(admin_dsn, name))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        from inspection_hub.db.migrate import upgrade_to_head_async

        asyncio.run(upgrade_to_head_async(url))
        token, usccs = asyncio.run(seed(dsn, args.enterprises, args.inspections, args.seed))
        prior = args.enterprises // 2 if args.prior_requests is None else args.prior_requests
        asyncio.run(seed_prior_requests(dsn, prior))
        log(f"prior check requests: {prior:,} (a quarter pending)")
        auth = f"Bearer {token}"
        work = Path(tempfile.mkdtemp(prefix="ih-bench-"))
        env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
            "INSPECTION_HUB_DATABASE_URL": url,
            "INSPECTION_HUB_TOKEN_PEPPER": PEPPER,
            "INSPECTION_HUB_SESSION_SECRET": secrets.token_urlsafe(48),
            "INSPECTION_HUB_DATA_DIR": str(work),
            "INSPECTION_HUB_WORKERS_ENABLED": "false",
            "INSPECTION_HUB_SCHEDULER_ENABLED": "false",
            "INSPECTION_HUB_DB_POOL_SIZE": str(args.pool_size),
            "INSPECTION_HUB_DB_MAX_OVERFLOW": "0",
            "INSPECTION_HUB_LOG_LEVEL": "WARNING",
            "BENCH_DSN": dsn,
        }
        bodies = request_bodies(usccs, 20_000)
        bodies_file = work / "bodies.txt"
        bodies_file.write_text("\n".join(bodies) + "\n")

        procs.append(start_server("bench.ceiling_app:ceiling_app", 8911, env))
        procs.append(start_server("inspection_hub.main:create_app", 8912, env))
        ceiling_pid, service_pid = procs[0].pid, procs[1].pid
        run_wrk(8911, "/ceiling", auth, bodies_file, 3, args.connections)  # warm-up
        run_wrk(8912, "/v1/check-requests", auth, bodies_file, 3, args.connections)
        # Ceiling and submissions in alternating slices: the machine's speed drifts by a third
        # within minutes, and alternating puts the same drift under both.
        slices = max(1, args.slices)
        slice_s = max(1, round(args.seconds / slices))
        ceilings, submits = [], []
        for _ in range(slices):
            conns = args.connections
            insert = partial(run_wrk, 8911, "/ceiling", auth, bodies_file, slice_s, conns)
            ceilings.append(with_cpu(dsn, ceiling_pid, slice_s, insert))
            post = partial(run_wrk, 8912, "/v1/check-requests", auth, bodies_file, slice_s, conns)
            submits.append(with_cpu(dsn, service_pid, slice_s, post))
        ceiling, submit = combined(ceilings), combined(submits)
        log(f"ceiling (FastAPI + 1 asyncpg insert), {slices} slices of {slice_s} s alternating "
            f"with the submissions: {ceiling}; per slice {[round(c['rps']) for c in ceilings]} "
            f"vs {[round(x['rps']) for x in submits]}")  # fmt: skip
        log(f"POST /v1/check-requests (with pre-check), saturated: {submit}")
        fixed = paced(8912, "/v1/check-requests", auth, bodies_file, args.rate, args.seconds)
        log(f"POST /v1/check-requests at {args.rate} req/s offered (paced wrk): {fixed}")
        ratio = submit["rps"] / ceiling["rps"]
        print(
            json.dumps(
                {
                    "enterprises": args.enterprises,
                    "inspections": args.inspections,
                    "ceiling": ceiling,
                    "submit_saturated": submit,
                    "submit_fixed_rate": fixed,
                    "ratio_to_ceiling": round(ratio, 3),
                    "target_ratio_met": ratio >= 0.30,
                    "target_p99_met": fixed["p99_ms"] < 50,
                },
                indent=2,
            )
        )
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        if not args.keep:
            asyncio.run(drop_database(admin_dsn, name))


if __name__ == "__main__":
    main()
