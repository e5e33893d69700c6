"""Profile one HTTP route of the service under load: CPU per request, py-spy, perf.

    python -m bench.profile_http submit                 # POST /v1/check-requests
    python -m bench.profile_http read --seconds 8       # GET /v1/inspections/{id}
    python -m bench.profile_http history --py-spy /tmp/history.txt
    python -m bench.profile_http me                     # GET /v1/me: the per-request floor
    python -m bench.profile_http approve                # POST /v1/check-requests/{id}/approve
    python -m bench.profile_http submit --perf /tmp/pg.data   # perf record the backends

Seeds a scratch database as the suite's scenarios do (`submit`: bench/checkrequest_bench.py's
20,000 enterprises, 60,000 inspections and 10,000 earlier requests; `read` / `history`: the read
scenario's history; `approve`: bench/approval_bench.py's history and 40,000 pending requests,
each approved at most once), starts the service under uvicorn with the suite's settings, warms it
up, then runs `wrk -t1 -c16` and prints req/s with the CPU each answered request cost the server
process and the database's backends (from /proc). With `--py-spy FILE` a second, profiled run
records raw stacks of the server (200 Hz; summarise with any folded-stack tool); with `--perf
FILE` the measured run also records `perf record -e cpu-clock -g` of the backends (`perf report
-i FILE --no-children`). The database is dropped afterwards unless `--keep`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import checkrequest_bench as cb
from bench.approval_bench import _backend_pids
from bench.common import make_token, paths_lua, sample_keys, seed_inspection_history

PG = "postgresql://postgres@127.0.0.1:5432"
PORT = 8913


def _prepare(mode: str, dsn: str, work: Path) -> tuple[Path, str, list[str]]:
    """Seed; return the wrk script, the URL path it is started on and extra wrk arguments."""
    if mode == "submit":
        token, usccs = asyncio.run(cb.seed(dsn, 20_000, 60_000, 2026))
        asyncio.run(cb.seed_prior_requests(dsn, 10_000))
        bodies = work / "bodies.txt"
        bodies.write_text("\n".join(cb.request_bodies(usccs, 20_000)) + "\n")
        script = work / "submit.lua"
        path = "/v1/check-requests"
        script.write_text(cb.LUA % (bodies, f"Bearer {token}", path))
        return script, path, []
    if mode == "approve":
        from bench import approval_bench as ab

        async def approvals() -> tuple[dict[str, list[int]], dict[str, list[str]]]:
            await seed_inspection_history(dsn, 20_000, 3)
            return await ab.seed_requests(dsn, 40_000), await ab.approver_tokens(dsn)

        by_agency, tokens = asyncio.run(approvals())
        script = work / "approve.lua"
        lua = ab.approve_lua(ab.interleave(by_agency), tokens, work)
        # Each run (warm-up, measured, profiled) goes on where the last one stopped, so that no
        # request is approved twice (a 409 would be measured instead of a decision).
        offset = work / "approve.offset"
        lua = lua.replace(
            "local i = 0",
            f'local f = io.open("{offset}")\nlocal i = f and tonumber(f:read("*l")) or 0\n'
            "if f then f:close() end\nlocal start = i",
        ) + (
            f'done = function(summary, latency, requests)\n  local o = io.open("{offset}", "w")\n'
            "  o:write(tostring(start + summary.requests + 64)) o:close()\nend\n"
        )
        script.write_text(lua)
        return script, "/healthz", []

    async def reads() -> tuple[list[str], list[int], str]:
        await seed_inspection_history(dsn, 20_000, 3)
        usccs, ids = await sample_keys(dsn)
        return usccs, ids, await make_token(dsn, "supervisor")

    usccs, ids, token = asyncio.run(reads())
    paths = {
        "read": [f"/v1/inspections/{i}" for i in ids],
        "history": [f"/v1/enterprises/{u}/inspections" for u in usccs],
        "me": ["/v1/me"],  # the framework's share: auth, routing, middleware, no SQL
    }[mode]
    script = work / f"{mode}.lua"
    script.write_text(paths_lua("GET", paths[:2000]))
    return script, "/healthz", ["-H", f"Authorization: Bearer {token}"]


def _py_spy() -> str:
    """py-spy from PATH, else beside this interpreter (a venv's bin/)."""
    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or str(beside)


def _wrk(script: Path, path: str, extra: list[str], seconds: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency", "-s", str(script), *extra,
         f"http://127.0.0.1:{PORT}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return cb.parse_wrk(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=("submit", "read", "history", "me", "approve"))
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--py-spy", default="", help="also record raw py-spy stacks here")
    parser.add_argument("--perf", default="", help="also perf-record the backends here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is required (apt-get install wrk)")

    name = f"ih_prof_{uuid.uuid4().hex[:8]}"
    dsn = f"{PG}/{name}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    asyncio.run(cb.create_database(PG + "/postgres", name))
    server: subprocess.Popen[bytes] | None = None
    try:
        from inspection_hub.db.migrate import upgrade_to_head_async

        asyncio.run(upgrade_to_head_async(url))
        work = Path(tempfile.mkdtemp(prefix="ih-prof-"))
        script, path, extra = _prepare(args.mode, dsn, work)
        env = {
            **os.environ,
            "PYTHONPATH": f"{cb.ROOT / 'src'}:{cb.ROOT}",
            "INSPECTION_HUB_DATABASE_URL": url,
            "INSPECTION_HUB_ENV": "production",
            "INSPECTION_HUB_TOKEN_PEPPER": cb.PEPPER,
            "INSPECTION_HUB_SESSION_SECRET": secrets.token_urlsafe(48),
            "INSPECTION_HUB_DATA_DIR": str(work),
            "INSPECTION_HUB_WORKERS_ENABLED": "false",
            "INSPECTION_HUB_SCHEDULER_ENABLED": "false",
            "INSPECTION_HUB_LOG_LEVEL": "WARNING",
            "INSPECTION_HUB_PUBLIC_RATE_LIMIT_PER_SECOND": "0",
        }
        server = cb.start_server("inspection_hub.main:create_app", PORT, env)
        _wrk(script, path, extra, 3)  # warm-up: the pool fills, statements are prepared
        backends = asyncio.run(_backend_pids(dsn))
        perf = None
        if args.perf:
            perf = subprocess.Popen(
                ["perf", "record", "-e", "cpu-clock", "-g", "-o", args.perf,
                 "-p", ",".join(map(str, backends))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(0.3)
        figures: dict[str, Any] = cb.with_cpu(
            dsn, server.pid, args.seconds, lambda: _wrk(script, path, extra, args.seconds)
        )
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        figures["backends"] = len(backends)
        print(json.dumps({"mode": args.mode, **figures}))
        if args.py_spy:
            spy = subprocess.Popen(
                [_py_spy(), "record", "--format", "raw", "-r", "200",
                 "-o", args.py_spy, "-p", str(server.pid), "-d", str(args.seconds + 1)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(0.5)
            profiled = _wrk(script, path, extra, args.seconds)
            spy.wait()
            print(json.dumps({"mode": args.mode, "under_py_spy": profiled, "stacks": args.py_spy}))
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        if args.keep:
            print(f"kept {dsn}")
        else:
            asyncio.run(cb.drop_database(PG + "/postgres", name))


if __name__ == "__main__":
    main()
