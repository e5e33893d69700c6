"""Import benchmark: N synthetic enterprises as one CSV upload through the real HTTP API.

    python -m bench.import_bench --rows 100000

Creates a scratch database on the PostgreSQL server at 127.0.0.1:5432 (or --pg), runs the
migrations, starts the app under uvicorn in a subprocess the way production does (uvloop,
httptools, access log off), POSTs the whole file in one request, and prints rows/s and the
server's peak resident memory (VmHWM). Target: >= 20,000 rows/s and < 500 MB peak.
The database is dropped at the end. A second, re-import pass measures the update path.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

from inspection_hub.auth.principal import Role
from inspection_hub.auth.service import create_token, get_or_create_user
from inspection_hub.config import Settings
from inspection_hub.db.migrate import upgrade_to_head
from inspection_hub.db.session import make_engine, make_sessionmaker, unit_of_work
from inspection_hub.enterprises.schemas import ALL_COLUMNS
from inspection_hub.kit.synth import enterprises

PEPPER = "bench-pepper-" + "p" * 40
REPO = Path(__file__).resolve().parent.parent


def make_csv(rows: int, seed: int) -> bytes:
    """The upload: a UTF-8 CSV with a header row."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(ALL_COLUMNS)
    for r in enterprises(rows, seed=seed):
        writer.writerow(["" if r[c] is None else r[c] for c in ALL_COLUMNS])
    return buf.getvalue().encode()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def current_rss_mb(pid: int) -> float:
    """VmRSS of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def admin_token(url: str) -> str:
    """Create an admin and return a bearer token for them."""
    settings = Settings(env="test", token_pepper=PEPPER, session_secret="s" * 40)
    engine = make_engine(url, settings)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            user = await get_or_create_user(
                session, username="bench.admin", role=Role.admin, agency_code=None
            )
            token, _ = await create_token(session, user=user, pepper=PEPPER)
            return token
    finally:
        await engine.dispose()


async def count_rows(dsn: str) -> int:
    """Enterprises in the scratch database."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM enterprise"))
    finally:
        await conn.close()


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Poll /readyz until the server answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not become ready")


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()

    name = f"ih_bench_{uuid.uuid4().hex[:10]}"
    admin_dsn = args.pg + "/postgres"
    dsn = f"{args.pg}/{name}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)

    t0 = time.perf_counter()
    body = make_csv(args.rows, args.seed)
    print(
        f"generated {args.rows} rows, {len(body) / 1e6:.1f} MB CSV in "
        f"{time.perf_counter() - t0:.1f} s"
    )

    async def create_db() -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop_db() -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        finally:
            await conn.close()

    asyncio.run(create_db())
    proc: subprocess.Popen[bytes] | None = None
    try:
        upgrade_to_head(url)
        token = asyncio.run(admin_token(url))
        port = free_port()
        env = dict(os.environ)
        env.update(
            INSPECTION_HUB_DATABASE_URL=url,
            INSPECTION_HUB_ENV="test",
            INSPECTION_HUB_TOKEN_PEPPER=PEPPER,
            INSPECTION_HUB_SESSION_SECRET="s" * 40,
            INSPECTION_HUB_WORKERS_ENABLED="false",
            INSPECTION_HUB_SCHEDULER_ENABLED="false",
            INSPECTION_HUB_LOG_LEVEL="WARNING",
            PYTHONPATH=str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", ""),
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "inspection_hub.main:create_app",
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
            ],
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, proc)
        idle = current_rss_mb(proc.pid)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}
        with httpx.Client(base_url=base, timeout=600) as client:
            for label in ("import (all new)", "re-import (all updated)"):
                started = time.perf_counter()
                r = client.post("/v1/enterprises/import", content=body, headers=headers)
                elapsed = time.perf_counter() - started
                if r.status_code != 200:
                    raise SystemExit(f"import failed: {r.status_code} {r.text[:500]}")
                print(f"{label}: {r.json()} in {elapsed:.2f} s = {args.rows / elapsed:,.0f} rows/s")
        stored = asyncio.run(count_rows(dsn))
        peak = peak_rss_mb(proc.pid)
        print(f"enterprises stored: {stored}")
        print(f"server RSS idle {idle:.0f} MiB, peak (VmHWM) {peak:.0f} MiB")
        print("targets: >= 20,000 rows/s, peak < 500 MB")
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        asyncio.run(drop_db())


if __name__ == "__main__":
    main()
