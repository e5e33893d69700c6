"""Shared benchmark pieces: scratch databases, a production-like uvicorn subprocess, wrk load,
memory sampling and the figures table.

Every HTTP figure comes from `wrk` in its own process (bounded by duration and connections) against
a server started the way production runs it: uvicorn, uvloop + httptools, access log off.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import asyncpg
import httpx

REPO = Path(__file__).resolve().parent.parent
PG = os.environ.get("INSPECTION_HUB_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
PEPPER = "bench-pepper-" + "p" * 40
SESSION_SECRET = "bench-session-" + "s" * 40


@dataclass
class Figure:
    """One row of the table: a scenario's figure against its ceiling."""

    scenario: str
    figure: str
    ceiling: str = ""
    ratio: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    peak_mib: float | None = None
    note: str = ""


@dataclass
class Load:
    """What wrk measured."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    non_2xx: int
    raw: str = field(repr=False, default="")


def loadavg() -> str:
    """The 1/5/15-minute load averages, as the docs quote them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status_mib(pid: int, key: str) -> float:
    """A /proc/<pid>/status memory field (VmHWM, VmRSS) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sqlalchemy_url(dsn: str) -> str:
    """The SQLAlchemy asyncpg URL of an asyncpg DSN."""
    return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


@asynccontextmanager
async def scratch_database(migrate: bool = True, keep: bool = False) -> AsyncIterator[str]:
    """A throwaway database on the bench server, migrated to head; yields its asyncpg DSN."""
    from inspection_hub.db.migrate import upgrade_to_head_async

    name = f"ih_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG + "/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{PG}/{name}"
    try:
        if migrate:
            await upgrade_to_head_async(sqlalchemy_url(dsn))
        yield dsn
    finally:
        if not keep:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def make_token(dsn: str, role: str = "admin", agency: str | None = None) -> str:
    """A bearer token for a new person with `role` (bench pepper)."""
    from inspection_hub.auth.principal import Role
    from inspection_hub.auth.service import create_token, get_or_create_user
    from inspection_hub.config import Settings
    from inspection_hub.db.session import make_engine, make_sessionmaker, unit_of_work

    settings = Settings(env="test", token_pepper=PEPPER, session_secret=SESSION_SECRET)
    engine = make_engine(sqlalchemy_url(dsn), settings)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            user = await get_or_create_user(
                session,
                username=f"bench.{role}.{uuid.uuid4().hex[:6]}",
                role=Role(role),
                agency_code=agency,
            )
            token, _ = await create_token(session, user=user, pepper=PEPPER)
            return token
    finally:
        await engine.dispose()


class Server:
    """An ASGI app under uvicorn in a subprocess, the way production runs it."""

    def __init__(
        self,
        app: str,
        *,
        env: dict[str, str] | None = None,
        factory: bool = True,
        workers: int = 1,
        profile_to: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        full_env = dict(os.environ)
        full_env.update(
            INSPECTION_HUB_ENV="production",
            INSPECTION_HUB_TOKEN_PEPPER=PEPPER,
            INSPECTION_HUB_SESSION_SECRET=SESSION_SECRET,
            INSPECTION_HUB_WORKERS_ENABLED="false",
            INSPECTION_HUB_SCHEDULER_ENABLED="false",
            INSPECTION_HUB_LOG_LEVEL="WARNING",
            INSPECTION_HUB_DATA_DIR=tempfile.mkdtemp(prefix="ih-bench-data-"),
            # the load generator is one client address: keep the public budget out of the way
            INSPECTION_HUB_PUBLIC_RATE_LIMIT_PER_SECOND="0",
            PYTHONPATH=os.pathsep.join(
                [str(REPO / "src"), str(REPO), full_env.get("PYTHONPATH", "")]
            ),
        )
        full_env.update(env or {})
        self.profiled = profile_to is not None
        cmd = [sys.executable, "-m"]
        if profile_to is not None:
            cmd += ["pyinstrument", "-r", "text", "-o", str(profile_to), "-m"]
        cmd += ["uvicorn", app]
        if factory:
            cmd.append("--factory")
        cmd += [
            "--host", "127.0.0.1", "--port", str(self.port), "--loop", "uvloop",
            "--http", "httptools", "--no-access-log", "--log-level", "warning",
            "--workers", str(workers),
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, env=full_env)

    def wait_ready(self, path: str = "/readyz", timeout: float = 60) -> None:
        """Poll until `path` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.base + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not answer {path} within {timeout} s")

    def peak_mib(self) -> float:
        """Peak resident memory (VmHWM) of the server process."""
        return proc_status_mib(self.proc.pid, "VmHWM")

    def rss_mib(self) -> float:
        """Current resident memory of the server process."""
        return proc_status_mib(self.proc.pid, "VmRSS")

    def stop(self) -> None:
        """SIGTERM (SIGINT when profiled, so pyinstrument writes its report), SIGKILL after 20 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT if self.profiled else signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def serving(app: str, **kwargs: object) -> Iterator[Server]:
    """Start a Server, wait until ready, stop it at the end."""
    ready_path = str(kwargs.pop("ready_path", "/readyz"))
    server = Server(app, **kwargs)  # type: ignore[arg-type]
    try:
        server.wait_ready(ready_path)
        yield server
    finally:
        server.stop()


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * _UNIT_MS[m.group(2)]


def wrk_available() -> bool:
    """True when the wrk binary is installed."""
    return shutil.which("wrk") is not None


def wrk(
    url: str,
    *,
    lua: str | None = None,
    duration: int = 10,
    connections: int = 32,
    threads: int = 1,
    headers: dict[str, str] | None = None,
) -> Load:
    """Run wrk against `url` (a lua script body sets method/body/paths); return its figures."""
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    script_path = None
    if lua:
        fd, script_path = tempfile.mkstemp(suffix=".lua", prefix="ih-wrk-")
        with os.fdopen(fd, "w") as fh:
            fh.write(lua)
        cmd += ["-s", script_path]
    cmd.append(url)
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=duration + 60, check=True
        ).stdout
    finally:
        if script_path:
            os.unlink(script_path)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Load(
        rps=rps,
        p50_ms=_ms(lat.get("50", "")),
        p99_ms=_ms(lat.get("99", "")),
        requests=total,
        errors=sum(int(x) for x in errs.groups()) if errs else 0,
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        raw=out,
    )


def random_path_lua(method: str, paths_expr: str, body: str | None = None) -> str:
    """A wrk script issuing `method` to a random path built by the Lua expression `paths_expr`
    (which may use `r`, a random integer from math.random)."""
    lines = [f'wrk.method = "{method}"', 'wrk.headers["Content-Type"] = "application/json"']
    if body is not None:
        lines.append(f"wrk.body = [[{body}]]")
    lines.append("math.randomseed(42)")
    lines.append("request = function()\n  local r = math.random(1, 2147483647)\n"
                 f"  return wrk.format(nil, {paths_expr})\nend")  # fmt: skip
    return "\n".join(lines) + "\n"


def run_async(coro: object) -> object:
    """asyncio.run for the synchronous table driver."""
    return asyncio.run(coro)  # type: ignore[arg-type]


def paths_lua(method: str, paths: list[str], body: str | None = None) -> str:
    """A wrk script issuing `method` to paths picked at random from `paths`."""
    listing = ",\n".join(f'"{p}"' for p in paths)
    return random_path_lua(method, "paths[1 + r % #paths]", body).replace(
        "math.randomseed(42)", f"math.randomseed(42)\npaths = {{\n{listing}\n}}"
    )


SEED_SQL = """
INSERT INTO agency (code, name) VALUES ('SCJG', '区市场监管局'), ('YJGL', '区应急管理局');
INSERT INTO matter (code, agency_code, name, category) VALUES
    ('SCJG-001', 'SCJG', '食品安全检查', 'food_safety'),
    ('YJGL-001', 'YJGL', '安全生产检查', 'work_safety');
"""

INSPECTIONS_SQL = """
INSERT INTO inspection (enterprise_uscc, kind, status, agency_code, year, window_start,
                        window_end, outcome, completed_at)
SELECT e.uscc,
       (ARRAY['planned','planned','planned','unplanned','joint'])[1 + (h % 5)],
       CASE WHEN y < {this_year} OR h % 3 = 0 THEN 'completed' ELSE 'scheduled' END,
       CASE WHEN h % 2 = 0 THEN 'SCJG' ELSE 'YJGL' END,
       y,
       make_date(y, 1 + (h % 11), 1),
       make_date(y, 1 + (h % 11), 1) + 20,
       CASE WHEN y < {this_year} OR h % 3 = 0
            THEN (ARRAY['no_issue','no_issue','no_issue','rectification_ordered'])[1 + h % 4] END,
       CASE WHEN y < {this_year} OR h % 3 = 0 THEN make_date(y, 1 + (h % 11), 10)::timestamptz END
FROM (SELECT uscc, abs(hashtext(uscc)) AS base FROM enterprise {where}) e,
     LATERAL (SELECT {this_year} - (g % 3) AS y, abs(hashtext(e.uscc || g)) AS h
              FROM generate_series(1, {per}) g) s;
"""

MATTERS_SQL = """
INSERT INTO inspection_matter (enterprise_uscc, inspection_id, matter_code, agency_code, category)
SELECT enterprise_uscc, id,
       CASE WHEN agency_code = 'SCJG' THEN 'SCJG-001' ELSE 'YJGL-001' END, agency_code,
       CASE WHEN agency_code = 'SCJG' THEN 'food_safety' ELSE 'work_safety' END
FROM inspection {where};
"""


async def seed_inspection_history(
    dsn: str, enterprises: int, per_enterprise: int, *, seed: int = 1, analyze: bool = True
) -> dict[str, float]:
    """COPY `enterprises` generated enterprises (valid USCCs, bench/datagen.py), then
    `per_enterprise` inspections each over the last three years, set-based; return timings."""
    from bench.datagen import generate_candidates
    from inspection_hub.kit.timeutil import local_today

    this_year = local_today().year
    conn = await asyncpg.connect(dsn)
    timings: dict[str, float] = {}
    try:
        await conn.execute(SEED_SQL)
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "enterprise",
            records=(
                (u, "企业" + u[-6:], u[2:8], "F5212", rc, _EST)
                for u, rc in generate_candidates(enterprises, seed)
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
        timings["enterprises_s"] = time.perf_counter() - started
        started = time.perf_counter()
        # generated consistently: skip the per-row foreign-key triggers during the bulk insert
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            INSPECTIONS_SQL.format(this_year=this_year, per=per_enterprise, where="")
        )
        await conn.execute(MATTERS_SQL.format(where=""))
        await conn.execute("SET session_replication_role = DEFAULT")
        timings["inspections_s"] = time.perf_counter() - started
        if analyze:
            started = time.perf_counter()
            await conn.execute("ANALYZE")
            timings["analyze_s"] = time.perf_counter() - started
    finally:
        await conn.close()
    return timings


async def sample_keys(dsn: str, n: int = 2000) -> tuple[list[str], list[int]]:
    """Random enterprise USCCs and inspection ids from the seeded data."""
    conn = await asyncpg.connect(dsn)
    try:
        # Pages sampled so that about 3n rows come back (a fixed 1 % gave ~200 enterprises at
        # 20 k: a smaller, hotter working set than the n the scenarios meant to spread over).
        total = await conn.fetchval(
            "SELECT greatest(reltuples, 1) FROM pg_class WHERE oid = 'enterprise'::regclass"
        )
        percent = min(100.0, 300.0 * n / float(total))
        usccs = [
            r[0]
            for r in await conn.fetch(
                "SELECT uscc FROM enterprise TABLESAMPLE SYSTEM ($1) LIMIT $2", percent, n
            )
        ] or [r[0] for r in await conn.fetch("SELECT uscc FROM enterprise LIMIT $1", n)]
        ids = [
            int(r[0])
            for r in await conn.fetch(
                "SELECT id FROM inspection WHERE enterprise_uscc = ANY($1::bpchar[])", usccs
            )
        ]
        return usccs, ids
    finally:
        await conn.close()


_EST = date(2010, 1, 1)
