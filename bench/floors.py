"""The write routes' SQL floor: the service's own statements behind a bare FastAPI endpoint.

    python -m bench.floors approve                  # seed, then alternate ceiling/floor/service
    python -m bench.floors submit --rounds 4 --seconds 5
    python -m bench.floors approve --dsn postgresql://…/ih_prof_…   # a seeded database
    python -m bench.floors precheck                 # the read: GET /v1/check-requests/{id}

Issue 9 asks the check-request and approval writes for 40 % of the insert ceiling (a bare
FastAPI endpoint doing one asyncpg insert). The *floor* answers the question the ratio leaves
open: how much of the gap is the service's Python and how much is what the database must do for
the operation. Each floor app is a bare FastAPI app like the ceilings' (no authentication, no
middleware, a pydantic body) running, on the service's own statement pool, exactly the SQL the
service runs for the route (for an approval `approvals.service._DECISION_READ` then
`_DECISION_WRITE`, for a submission `_SUBMIT_AT_ONCE`) with constant payloads and no pre-check,
rules, signature or answer beyond the id. A service that cost nothing in Python would reach the
floor's rate.

The pre-check read (`precheck`) is held to 50 % of the *select* ceiling instead: its floor runs
`approvals.service._READ_REQUEST` (the request, its matters' categories and the enterprise's
facts, as a supervisor sees them) and answers the id and version, without parsing the facts or
running the rules; its data are the suite's precheck scenario's (20,000 enterprises, three
inspections each, 19,000 pending requests), and the select ceiling reads 100,000 rows of the
ceiling table by id, as in the suite.

The ceiling, the floor and the service run side by side under uvicorn with the suite's settings
(one worker each) and are loaded by `wrk -t1 -c16` in alternating slices of `--seconds`, so the
machine's drift weighs on all three; each line gives req/s and the CPU one answered request cost
the server process and its PostgreSQL backends. Approvals each take an id of their own (floor
and service approve different pending requests), and the database is checked afterwards as
`bench.approval_bench` checks it: every approval wrote one decision, one audit row, one event
and one inspection, whichever app made it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI
from pydantic import BaseModel

from bench.ceilings import INSERT_LUA, TABLE, fill_select_table, select_lua
from bench.common import Load, Server, paths_lua, sqlalchemy_url, wrk, wrk_available

PG = "postgresql://postgres@127.0.0.1:5432"
CONNECTIONS = 16
_PAYLOAD = '{"floor": true}'


async def _statement_pool() -> asyncpg.Pool:
    """The pool the service runs these statements on (`db.session.make_statement_pool`: its
    size, D26, and no reset round trip on check-in), so that only the Python differs."""
    from types import SimpleNamespace

    from inspection_hub.db.session import make_statement_pool

    size = int(os.environ.get("INSPECTION_HUB_DB_STATEMENT_POOL_SIZE", "6"))
    settings: Any = SimpleNamespace(db_statement_pool_size=size)
    return await make_statement_pool(sqlalchemy_url(os.environ["BENCH_DSN"]), settings)


class DecisionBody(BaseModel):
    """An approval's optional body."""

    comment: str | None = None


class Window(BaseModel):
    """A submission's window."""

    start: date
    end: date


class SubmissionBody(BaseModel):
    """A submission's body, as the service's clients send it."""

    agency: str
    enterprise: str
    matters: list[str]
    basis: str
    basis_ref: str | None = None
    reason: str
    window: Window
    emergency: bool = False


def _bare_app(role: str) -> tuple[FastAPI, dict[str, Any]]:
    """A bare FastAPI app whose lifespan opens the service's statement pool and finds one
    official of `role` per agency (`state["pool"]`, `state["officials"]`)."""
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["pool"] = pool = await _statement_pool()
        rows = await pool.fetch(
            "SELECT DISTINCT ON (agency_code) agency_code, id, username, display_name "
            "FROM user_account WHERE role = $1 ORDER BY agency_code, id",
            role,
        )
        state["officials"] = {r["agency_code"]: r for r in rows}
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan)
    app.add_api_route("/ready", lambda: {"status": "ok"})
    return app, state


def approval_floor_app() -> FastAPI:
    """POST /v1/check-requests/{id}/approve: the approval's read and write, nothing else."""
    from fastapi import HTTPException

    from inspection_hub.approvals.service import _DECISION_READ, _DECISION_WRITE

    app, state = _bare_app("approver")

    @app.post("/v1/check-requests/{request_id}/approve")
    async def approve(request_id: int, body: DecisionBody | None = None) -> dict[str, Any]:
        now = datetime.now(UTC)
        async with state["pool"].acquire() as conn:
            row = await conn.fetchrow(_DECISION_READ, request_id, True)
            if row is None:
                raise HTTPException(404)
            who = state["officials"][row["agency_code"]]
            inspection_id = row["next_inspection_id"]
            decided = await conn.fetchval(
                _DECISION_WRITE,
                row["enterprise_uscc"], request_id, row["version"], "approved", who["id"],
                who["display_name"], now, body.comment if body else None, inspection_id,
                f"floor-{inspection_id}", row["matters"], who["id"], who["username"],
                "approver", None, "inspection.schedule", _PAYLOAD, "check_request.approve",
                '{"status": "pending", "version": 1}', _PAYLOAD, "inspection.scheduled", 1,
                "inspection", [row["agency_code"]], "check_request.approved", 1,
                "check_request", [row["agency_code"]],
            )  # fmt: skip
        if decided is None:
            raise HTTPException(409)
        return {"id": decided, "status": "approved", "version": row["version"] + 1}

    return app


def precheck_floor_app() -> FastAPI:
    """GET /v1/check-requests/{id}: the pre-check's one statement, its facts left unparsed."""
    from fastapi import HTTPException

    from inspection_hub.approvals.service import _READ_REQUEST

    app, state = _bare_app("supervisor")

    @app.get("/v1/check-requests/{request_id}")
    async def read(request_id: int) -> dict[str, Any]:
        async with state["pool"].acquire() as conn:
            row = await conn.fetchrow(_READ_REQUEST, request_id, True, None)
        if row is None or row["uscc"] is None:  # the enterprise's facts were read
            raise HTTPException(404)
        return {"id": row["id"], "version": row["version"]}

    return app


def submission_floor_app() -> FastAPI:
    """POST /v1/check-requests: the submission's one statement (facts read, three inserts)."""
    from fastapi import HTTPException

    from inspection_hub.approvals.service import _SUBMIT_AT_ONCE
    from inspection_hub.conflicts.facts import submission_bounds

    app, state = _bare_app("scheduler")

    @app.post("/v1/check-requests", status_code=201)
    async def submit(body: SubmissionBody) -> dict[str, Any]:
        now = datetime.now(UTC)
        who = state["officials"][body.agency]
        async with state["pool"].acquire() as conn:
            row = await conn.fetchrow(
                _SUBMIT_AT_ONCE,
                body.enterprise, *submission_bounds(body.window.start.year), body.matters,
                body.agency, who["id"], who["display_name"], body.basis, body.basis_ref,
                body.reason, body.window.start, body.window.end, "floor", now,
                now + timedelta(days=7), now + timedelta(days=21), _PAYLOAD,
                "check_request.submitted", 1, "check_request", [body.agency], who["id"],
                who["username"], "scheduler", None, True,
            )  # fmt: skip
        if row["id"] is None:
            raise HTTPException(422)
        return {"id": row["id"], "status": "pending", "version": 1}

    return app


# -- the runner ---------------------------------------------------------------------------


async def _seed(mode: str, dsn: str) -> dict[str, Any]:
    """Seed as `bench.profile_http` does; return what the wrk scripts need."""
    from bench import approval_bench as ab
    from bench import checkrequest_bench as cb
    from bench.__main__ import SCALES
    from bench.common import seed_inspection_history

    if mode == "approve":
        await seed_inspection_history(dsn, 20_000, 3)
        await ab.seed_requests(dsn, 60_000)
        return {}
    if mode == "precheck":  # the suite's precheck scenario at --scale small
        await seed_inspection_history(dsn, 20_000, 3)
        await ab.seed_requests(dsn, SCALES["small"].pending_requests)
        return {}
    token, usccs = await cb.seed(dsn, 20_000, 60_000, 2026)
    await cb.seed_prior_requests(dsn, 10_000)
    return {"token": token, "usccs": usccs}


async def _scripts(mode: str, dsn: str, work: Path, seeded: dict[str, Any]) -> dict[str, Any]:
    """The approval ids still pending (with tokens), or the submission bodies' wrk script."""
    from bench import approval_bench as ab
    from bench import checkrequest_bench as cb
    from bench.common import make_token

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_ceiling")
        if mode != "precheck":  # the select ceiling's table is filled below
            await conn.execute(TABLE)
        if mode == "approve":
            rows = await conn.fetch(
                "SELECT id, agency_code FROM check_request WHERE status = 'pending' "
                "ORDER BY hashtext(id::text), id"
            )
            return {"ids": [(r["id"], r["agency_code"]) for r in rows],
                    "tokens": await ab.approver_tokens(dsn)}  # fmt: skip
        if mode == "precheck":
            await fill_select_table(dsn)
            rows = await conn.fetch(
                "SELECT id FROM check_request WHERE status = 'pending' "
                "ORDER BY hashtext(id::text), id LIMIT 2000"
            )  # as many as the suite's precheck scenario reads
            token = await make_token(dsn, "supervisor")
            return {"lua": paths_lua("GET", [f"/v1/check-requests/{r['id']}" for r in rows]),
                    "auth": f"Bearer {token}"}  # fmt: skip
        usccs = seeded.get("usccs") or [
            r[0] for r in await conn.fetch("SELECT uscc FROM enterprise ORDER BY hashtext(uscc)")
        ]
        token = seeded.get("token") or await make_token(dsn, "scheduler", "SCJG")
    finally:
        await conn.close()
    bodies = work / "bodies.txt"
    bodies.write_text("\n".join(cb.request_bodies(usccs, 20_000)) + "\n")
    return {"lua": cb.LUA % (bodies, f"Bearer {token}", "/v1/check-requests")}


def _line(name: str, load: Load, cpu: dict[str, float], ceiling: Load | None) -> str:
    ratio = f", {load.rps / ceiling.rps:.0%} of the ceiling" if ceiling else ""
    return (
        f"{name:8} {load.rps:7,.0f} req/s{ratio}; p50 {load.p50_ms:.1f} ms, p99 "
        f"{load.p99_ms:.1f} ms; CPU per request: server {cpu['server_cpu_ms']} ms, PostgreSQL "
        f"{cpu['db_cpu_ms']} ms; non-2xx {load.non_2xx}"
    )


_FLOOR_APPS = {
    "approve": "approval_floor_app",
    "submit": "submission_floor_app",
    "precheck": "precheck_floor_app",
}


def run(
    mode: str,
    dsn: str,
    rounds: int,
    seconds: int,
    seeded: dict[str, Any],
    connections: int = CONNECTIONS,
) -> dict[str, Any]:
    """Alternate ceiling, floor and service; print each slice and the combined figures."""
    from bench import approval_bench as ab

    work = Path(tempfile.mkdtemp(prefix="ih-floor-"))
    scripts = asyncio.run(_scripts(mode, dsn, work, seeded))
    apps = {
        "ceiling": Server("bench.ceilings:bare_app", env={"BENCH_DSN": dsn}),
        "floor": Server(f"bench.floors:{_FLOOR_APPS[mode]}", env={"BENCH_DSN": dsn}),
        "service": Server(
            "inspection_hub.main:create_app",
            env={"INSPECTION_HUB_DATABASE_URL": sqlalchemy_url(dsn)},
        ),
    }
    ids: list[tuple[int, str]] = scripts.get("ids", [])
    # the floor's and the service's slices, warm-ups included, share the pending ids equally
    share = len(ids) // (2 * (rounds + 1)) if mode == "approve" else 0
    used = 0
    seen = 0
    before = asyncio.run(ab.check_decisions(dsn))["approved"] if mode == "approve" else 0

    def load_of(name: str, server: Server, duration: int) -> Any:
        nonlocal used
        if name == "ceiling" and mode == "precheck":
            return partial(wrk, server.base + "/select/1", lua=select_lua(), duration=duration,
                           connections=connections)  # fmt: skip
        if name == "ceiling":
            return partial(wrk, server.base + "/insert", lua=INSERT_LUA, duration=duration,
                           connections=connections)  # fmt: skip
        if mode == "precheck":  # the supervisor's token (the floor does not look at it)
            auth = {"Authorization": scripts["auth"]}
            return partial(wrk, server.base + "/x", lua=scripts["lua"], duration=duration,
                           connections=connections, headers=auth)  # fmt: skip
        if mode == "approve":
            part = ids[used : used + share]  # each slice its own ids: none approved twice
            used += len(part)
            lua = ab.approve_lua(part, scripts["tokens"], work)
        else:
            lua = scripts["lua"]
        return partial(wrk, server.base + "/x", lua=lua, duration=duration,
                       connections=connections)  # fmt: skip

    results: dict[str, list[tuple[Load, dict[str, float]]]] = {k: [] for k in apps}
    try:
        for name, server in apps.items():
            server.wait_ready("/readyz" if name == "service" else "/ready")
        for name, server in apps.items():  # warm-up: pools fill, statements are prepared
            warm = load_of(name, server, 2)()
            if name != "ceiling":
                seen += _ok(warm)
        for r in range(rounds):
            for name, server in apps.items():
                load, cpu = ab.measured(dsn, server.proc.pid, load_of(name, server, seconds))
                results[name].append((load, cpu))
                if name != "ceiling":
                    seen += _ok(load)
                print(f"round {r + 1} " + _line(name, load, cpu, None), flush=True)
                if mode == "approve" and name != "ceiling" and load.non_2xx:
                    print(f"# WARNING: {name} ran out of its {share:,} ids in round {r + 1} "
                          "(409s counted as non-2xx): seed more or run shorter slices")  # fmt: skip
    finally:
        for server in apps.values():
            server.stop()
    combined = {name: ab.combined(parts) for name, parts in results.items()}
    ceiling = combined["ceiling"][0]
    print(f"# combined, {rounds} rounds of {seconds} s each ({mode}):")
    for name, (load, cpu) in combined.items():
        print(_line(name, load, cpu, None if name == "ceiling" else ceiling))
    out: dict[str, Any] = {
        "mode": mode,
        "rounds": rounds,
        "seconds": seconds,
        **{
            name: {"rps": round(load.rps, 1), "p50_ms": load.p50_ms, "p99_ms": load.p99_ms}
            | cpu
            | {"per_round": [round(x.rps) for x, _ in results[name]]}
            for name, (load, cpu) in combined.items()
        },
        "floor_ratio": round(combined["floor"][0].rps / ceiling.rps, 3),
        "service_ratio": round(combined["service"][0].rps / ceiling.rps, 3),
    }
    if mode == "approve":
        db = asyncio.run(ab.check_decisions(dsn))
        lag = db["approved"] - before - seen
        out["db"] = db
        out["correct"] = (
            db["bad_approved"] == 0
            and db["bad_pending"] == 0
            and db["self_decided"] == 0
            and db["other_agency"] == 0
            and 0 <= lag <= 2 * connections * (2 * rounds + 2)
        )
        print(f"# correctness: {'OK' if out['correct'] else 'FAILED'}: {db['approved'] - before:,} "
              f"approved in this run ({seen:,} 2xx seen); of all {db['approved']:,} approved, "
              f"{db['bad_approved']} without exactly one decision, audit row, event and "
              f"inspection")  # fmt: skip
    return out


def _ok(load: Load) -> int:
    return int(load.requests - load.non_2xx)


def main() -> None:
    """Parse the flags, seed (unless --dsn), run, print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=("approve", "submit", "precheck"))
    parser.add_argument("--dsn", default="", help="a database seeded for the mode (kept)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=CONNECTIONS, help="wrk -c")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    if not wrk_available():
        raise SystemExit("wrk is required (apt-get install -y wrk)")
    if args.dsn:
        out = run(args.mode, args.dsn, args.rounds, args.seconds, {}, args.connections)
    else:
        from bench import checkrequest_bench as cb
        from inspection_hub.db.migrate import upgrade_to_head_async

        name = f"ih_floor_{uuid.uuid4().hex[:8]}"
        dsn = f"{PG}/{name}"
        asyncio.run(cb.create_database(PG + "/postgres", name))
        try:
            asyncio.run(upgrade_to_head_async(sqlalchemy_url(dsn)))
            seeded = asyncio.run(_seed(args.mode, dsn))
            out = run(args.mode, dsn, args.rounds, args.seconds, seeded, args.connections)
        finally:
            if args.keep:
                print(f"# kept {dsn}")
            else:
                asyncio.run(cb.drop_database(PG + "/postgres", name))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
