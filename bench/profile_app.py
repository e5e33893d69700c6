"""The app alone, in process: CPU per request without uvicorn, sockets or wrk.

    python -m bench.profile_http approve --keep         # seed a database and keep it
    python -m bench.profile_app approve --dsn postgresql://postgres@127.0.0.1:5432/ih_prof_...
    python -m bench.profile_app read --dsn ... --cprofile          # where the Python time goes
    valgrind --tool=callgrind --instr-atstart=no python -m bench.profile_app approve \\
        --dsn ... --callgrind                            # instructions of the measured loop only

Calls the ASGI app (`inspection_hub.main.create_app`, lifespan running) directly, one request at
a time, after 300 warm-up requests, and prints the process CPU per request and the CPU the
database backends used meanwhile (from /proc, 10 ms ticks: use `--n` of 2,000 or more). Modes:
`me` (the floor: auth, routing, middleware, no SQL), `read` (GET /v1/inspections/{id}),
`history` (GET /v1/enterprises/{uscc}/inspections), `precheck` (GET /v1/check-requests/{id} of
pending requests), `approve` (POST .../approve, each pending request once: needs `profile_http
approve --keep`'s or `approval_bench --keep`'s database), `submit` (POST /v1/check-requests:
needs `profile_http submit --keep`'s). CPU time in process moves by ±15 % between runs on a
shared machine; alternate before/after runs, or count instructions: with `--callgrind` the loop
turns callgrind's instrumentation on and off (`callgrind_control`), so `I refs` covers it alone
and repeats within 0.5 %. Instructions miss what costs time without costing instructions
(greenlet stack switches: D25), so confirm a change with `bench.profile_http` under load.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from bench.approval_bench import _backend_pids, _cpu_seconds
from bench.common import PEPPER, SESSION_SECRET, make_token

Message = MutableMapping[str, Any]
Request = tuple[str, str, bytes, list[tuple[bytes, bytes]]]  # method, path, body, headers

PATHS = {
    "me": "SELECT '/v1/me' FROM generate_series(1, 10)",
    "read": "SELECT '/v1/inspections/' || id FROM inspection "
    "ORDER BY hashtext(id::text) LIMIT 2000",
    "history": "SELECT DISTINCT '/v1/enterprises/' || enterprise_uscc || '/inspections' "
    "FROM inspection LIMIT 2000",
    "precheck": "SELECT '/v1/check-requests/' || id FROM check_request WHERE status = 'pending' "
    "ORDER BY hashtext(id::text) LIMIT 2000",
}


def _environment(dsn: str) -> None:
    os.environ.update(
        {
            "INSPECTION_HUB_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
            "INSPECTION_HUB_ENV": "production",
            "INSPECTION_HUB_TOKEN_PEPPER": PEPPER,
            "INSPECTION_HUB_SESSION_SECRET": SESSION_SECRET,
            "INSPECTION_HUB_WORKERS_ENABLED": "false",
            "INSPECTION_HUB_SCHEDULER_ENABLED": "false",
            "INSPECTION_HUB_LOG_LEVEL": "WARNING",
            "INSPECTION_HUB_PUBLIC_RATE_LIMIT_PER_SECOND": "0",
            "INSPECTION_HUB_DATA_DIR": os.environ.get(
                "INSPECTION_HUB_DATA_DIR", "/tmp/ih-profile-app"
            ),
        }
    )


async def _requests(mode: str, dsn: str, n: int) -> list[Request]:
    """The requests to replay (warm-up first), each with a token allowed to make it."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        if mode in PATHS:
            paths = [r[0] for r in await conn.fetch(PATHS[mode])]
            auth = f"Bearer {await make_token(dsn, 'supervisor')}".encode()
            return [
                ("GET", paths[i % len(paths)], b"", [(b"authorization", auth)]) for i in range(n)
            ]
        if mode == "approve":
            from bench.approval_bench import approver_tokens

            rows = await conn.fetch(
                "SELECT id, agency_code FROM check_request WHERE status = 'pending' ORDER BY id "
                "LIMIT $1",
                n,
            )
            tokens = await approver_tokens(dsn, 1)
            body = json.dumps(
                {"comment": "同意，按计划外检查程序办理"}, ensure_ascii=False
            ).encode()
            return [
                (
                    "POST",
                    f"/v1/check-requests/{r['id']}/approve",
                    body,
                    [
                        (b"content-type", b"application/json"),
                        (b"authorization", f"Bearer {tokens[r['agency_code']][0]}".encode()),
                        (b"if-match", b'"1"'),
                    ],
                )
                for r in rows
            ]
        from bench import checkrequest_bench as cb

        usccs = [
            r[0]
            for r in await conn.fetch(
                "SELECT uscc FROM enterprise ORDER BY hashtext(uscc) LIMIT 2000"
            )
        ]
        auth = f"Bearer {await make_token(dsn, 'scheduler', 'SCJG')}".encode()
        return [
            (
                "POST",
                "/v1/check-requests",
                b.encode(),
                [(b"content-type", b"application/json"), (b"authorization", auth)],
            )
            for b in cb.request_bodies(usccs, n)
        ]
    finally:
        await conn.close()


def _callgrind(switch: str) -> None:
    subprocess.run(
        ["callgrind_control", "-i", switch, str(os.getpid())], capture_output=True, check=False
    )


async def run(args: argparse.Namespace) -> None:
    _environment(args.dsn)
    from inspection_hub.main import create_app

    warm = 300
    requests = await _requests(args.mode, args.dsn, args.n + warm)
    if len(requests) < args.n + warm:
        raise SystemExit(f"only {len(requests)} requests available for {args.mode}; seed more")
    app = create_app()
    statuses: Counter[int] = Counter()

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] += 1

    def receiver(body: bytes) -> Callable[[], Awaitable[Message]]:
        async def receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        return receive

    def scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
        return {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": [(b"host", b"bench"), *headers],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {},
        }  # fmt: skip

    async with app.router.lifespan_context(app):
        for method, path, body, headers in requests[:warm]:
            await app(scope(method, path, headers), receiver(body), send)
        statuses.clear()
        profile = cProfile.Profile() if args.cprofile else None
        if args.callgrind:
            _callgrind("on")
        if profile is not None:
            profile.enable()
        backends = await _backend_pids(args.dsn)
        db_before = {pid: _cpu_seconds([pid]) for pid in backends}
        started = time.process_time()
        for method, path, body, headers in requests[warm:]:
            await app(scope(method, path, headers), receiver(body), send)
        cpu = time.process_time() - started
        db_cpu = sum(
            _cpu_seconds([pid]) - db_before.get(pid, 0.0) for pid in await _backend_pids(args.dsn)
        )
        if profile is not None:
            profile.disable()
        if args.callgrind:
            _callgrind("off")
    print(json.dumps({"mode": args.mode, "requests": args.n, "statuses": dict(statuses),
                      "cpu_ms_per_request": round(cpu / args.n * 1000, 3),
                      "db_cpu_ms_per_request": round(db_cpu / args.n * 1000, 3)}))  # fmt: skip
    if profile is not None:
        stats = pstats.Stats(profile, stream=sys.stdout)
        if args.callees:  # who a function's time goes to, e.g. solve_dependencies
            stats.sort_stats(args.sort).print_callees(args.callees)
        else:
            stats.sort_stats(args.sort).print_stats(args.top)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=("me", "read", "history", "precheck", "approve", "submit"))
    parser.add_argument("--dsn", required=True, help="a seeded database (see above)")
    parser.add_argument("--n", type=int, default=2000, help="measured requests")
    parser.add_argument("--cprofile", action="store_true", help="print cProfile's top functions")
    parser.add_argument("--sort", default="tottime", help="cProfile sort key (e.g. cumulative)")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--callees", help="with --cprofile: print this function's callees")
    parser.add_argument("--callgrind", action="store_true", help="toggle callgrind around the loop")
    args = parser.parse_args()
    import uvloop

    uvloop.run(run(args))


if __name__ == "__main__":
    main()
