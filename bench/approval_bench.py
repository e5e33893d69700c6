"""Benchmark: approval decisions per second through HTTP, each pending request approved once.

    PYTHONPATH=$PWD/src:$PWD python -m bench.approval_bench            # 20k enterprises, 10 s
    PYTHONPATH=$PWD/src:$PWD python -m bench.approval_bench --seconds 10 --py-spy /tmp/a.txt

What it does, in one run:
1. creates a scratch database (bench/common.py), loads N enterprises with a three-year inspection
   history (the read scenario's seed), then files --requests pending check requests set-based:
   valid pending requests as `submit` leaves them (policy version, deadlines, matters of the
   requesting agency, the `check_request.submitted` event and audit row), half for SCJG and half
   for YJGL, filed by each agency's scheduler;
2. makes tokens for two approvers per agency (never the requester, so no self-approval);
3. serves the app under uvicorn (bench/common.py `Server`) beside the insert ceiling,
   bench/ceilings.py's bare FastAPI app (one asyncpg insert in a transaction), and drives both
   with the same `wrk -t1` flags in alternating slices (`--slices`, default 4, of
   `--seconds / slices` each: ceiling, approvals, ceiling, ...), so that the machine's drifting
   speed weighs on both alike; the figures are the slices' mean rate, median p50, worst p99 and
   CPU per request over all of them. `POST /v1/check-requests/{id}/approve` (If-Match "1", a
   comment) is driven by a Lua script that walks a list of ids, its own part of it in each
   slice, so that every request is approved at most once, each with a token of an approver of
   its own agency (a short warm-up takes its own part of the ids);
4. checks in the database that every approved request has exactly one decision (approved,
   version 2, decided_by set, one inspection), one `check_request.approve` audit row and one
   `check_request.approved` event, and that no other request was touched.
Target (issue 9): approval writes >= 40 % of the insert ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg

from bench.ceilings import INSERT_LUA, TABLE
from bench.common import (
    PEPPER,
    SESSION_SECRET,
    Load,
    Server,
    loadavg,
    make_token,
    scratch_database,
    seed_inspection_history,
    sqlalchemy_url,
    wrk,
    wrk_available,
)

AGENCIES = {"SCJG": "SCJG-001", "YJGL": "YJGL-001"}
WARMUP_SECONDS = 2


def log(msg: str) -> None:
    """A timestamped progress line (stdout, so --log keeps it)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


async def _user(conn: Any, username: str, role: str, agency: str) -> tuple[int, str]:
    name = f"{agency} {role}"
    uid = await conn.fetchval(
        "INSERT INTO user_account (username, display_name, role, agency_code) "
        "VALUES ($1, $2, $3, $4) RETURNING id",
        username,
        name,
        role,
        agency,
    )
    return int(uid), name


FILE_REQUESTS = """
WITH picked AS (
    SELECT uscc, row_number() OVER (ORDER BY hashtext(uscc), uscc) AS n
    FROM enterprise
), wanted AS (
    SELECT g AS n, p.uscc
    FROM generate_series(1, $1::int) g
    JOIN picked p ON p.n = 1 + (g - 1) % (SELECT count(*) FROM picked)
)
INSERT INTO check_request (enterprise_uscc, agency_code, requester_id, requester_name, matters,
                           basis, basis_ref, reason, window_start, window_end, emergency, status,
                           version, policy_version, submitted_at, decision_due_at, expires_at,
                           created_at, updated_at)
SELECT w.uscc, a.agency, a.requester_id, a.requester_name, ARRAY[a.matter]::varchar[],
       'complaint', '投诉编号 2026-' || w.n, '群众投诉', $2::date + (w.n % 20)::int,
       $2::date + (w.n % 20)::int + 5, false, 'pending', 1, $3, $4, $5, $6, $4, $4
FROM wanted w
JOIN unnest($7::text[], $8::bigint[], $9::text[], $10::text[])
     WITH ORDINALITY AS a(agency, requester_id, requester_name, matter, k) ON a.k = 1 + w.n % 2
RETURNING id, enterprise_uscc, agency_code
"""

SUBMITTED_EVENTS = """
INSERT INTO event (type, type_version, aggregate_type, aggregate_id, aggregate_seq,
                   enterprise_uscc, agency_codes, payload, commit_order)
SELECT 'check_request.submitted', 1, 'check_request', c.id::text, 1, c.enterprise_uscc,
       ARRAY[c.agency_code]::varchar[],
       jsonb_build_object('check_request_id', c.id, 'enterprise', c.enterprise_uscc,
                          'agency', c.agency_code, 'matters', c.matters, 'status', c.status,
                          'version', c.version),
       (pg_current_xact_id()::text)::bigint
FROM check_request c
"""

SUBMITTED_AUDIT = """
INSERT INTO audit_log (actor_id, actor_name, role, action, object_type, object_id, after)
SELECT c.requester_id, u.username, 'scheduler', 'check_request.submit', 'check_request',
       c.id::text, jsonb_build_object('check_request_id', c.id, 'status', c.status)
FROM check_request c JOIN user_account u ON u.id = c.requester_id
"""


async def seed_requests(dsn: str, n: int) -> dict[str, list[int]]:
    """File n pending check requests set-based (with their submitted event and audit row);
    return the request ids per agency."""
    from inspection_hub.config import Settings
    from inspection_hub.kit.timeutil import local_today, utcnow
    from inspection_hub.kit.workdays import add_working_days
    from inspection_hub.policy import policy_in_force

    settings = Settings(env="test", token_pepper=PEPPER, session_secret=SESSION_SECRET)
    start = local_today() + timedelta(days=3)
    policy = policy_in_force(settings.policy_path()).at(start)
    now = utcnow()
    due = add_working_days(now, policy.check_requests.decision_working_days)
    expires = add_working_days(due, policy.check_requests.escalation_to_expiry_working_days)
    conn = await asyncpg.connect(dsn)
    try:
        requesters = [
            await _user(conn, f"bench.scheduler.{a.lower()}", "scheduler", a) for a in AGENCIES
        ]
        rows = await conn.fetch(
            FILE_REQUESTS,
            n,
            start,
            policy.version,
            now,
            due,
            expires,
            list(AGENCIES),
            [uid for uid, _ in requesters],
            [name for _, name in requesters],
            list(AGENCIES.values()),
        )
        await conn.execute(SUBMITTED_EVENTS)
        await conn.execute(SUBMITTED_AUDIT)
        await conn.execute(TABLE)  # the insert ceiling's table
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    by_agency: dict[str, list[int]] = {a: [] for a in AGENCIES}
    for r in rows:
        by_agency[r["agency_code"]].append(int(r["id"]))
    return by_agency


async def approver_tokens(dsn: str, per_agency: int = 2) -> dict[str, list[str]]:
    """Bearer tokens of approvers of each agency (none of them filed a request)."""
    return {a: [await make_token(dsn, "approver", a) for _ in range(per_agency)] for a in AGENCIES}


def interleave(by_agency: dict[str, list[int]]) -> list[tuple[int, str]]:
    """(id, agency) alternating between agencies, in a shuffled-looking but fixed order."""
    lists = [[(i, a) for i in sorted(ids, key=lambda x: (x * 2654435761) % 2**32)]
             for a, ids in by_agency.items()]  # fmt: skip
    out: list[tuple[int, str]] = []
    for pair in zip(*lists, strict=False):
        out.extend(pair)
    return out


APPROVE_LUA = """
local tokens = {%(tokens)s}
local headers = {}
for agency, list in pairs(tokens) do
  headers[agency] = {}
  for k, token in ipairs(list) do
    headers[agency][k] = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. token,
      ["If-Match"] = '"1"',
    }
  end
end
local ids, agencies = {}, {}
for line in io.lines("%(ids_file)s") do
  local id, agency = line:match("^(%%d+) (%%S+)$")
  ids[#ids + 1] = id
  agencies[#agencies + 1] = agency
end
local body = '{"comment": "同意，按计划外检查程序办理"}'
local i = 0
request = function()
  i = i + 1
  if i > #ids then
    -- the list is used up: repeat the last id (answered 409, counted as non-2xx)
    i = #ids
  end
  local list = headers[agencies[i]]
  local h = list[1 + i %% #list]
  return wrk.format("POST", "/v1/check-requests/" .. ids[i] .. "/approve", h, body)
end
"""


def approve_lua(ids: list[tuple[int, str]], tokens: dict[str, list[str]], workdir: Path) -> str:
    """The wrk script walking `ids` once, each with a token of its agency's approvers."""
    ids_file = workdir / f"ids-{ids[0][0]}.txt"
    ids_file.write_text("".join(f"{i} {a}\n" for i, a in ids))
    listing = ", ".join(
        f"{a} = {{{', '.join(json.dumps(t) for t in ts)}}}" for a, ts in tokens.items()
    )
    return APPROVE_LUA % {"tokens": listing, "ids_file": ids_file}


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes (from /proc), in seconds."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


async def _backend_pids(dsn: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return [int(r[0]) for r in rows]
    finally:
        await conn.close()


def cpu_during(dsn: str, server_pid: int, run: Any) -> tuple[Any, float, float]:
    """`run()`'s result and the CPU seconds the server process and the database's backends
    used meanwhile (from /proc). Backends the pool opens during the run count from zero; one
    that ended during it is not counted (its last CPU figure is gone)."""
    before = asyncio.run(_backend_pids(dsn))
    app0, db0 = _cpu_seconds([server_pid]), {pid: _cpu_seconds([pid]) for pid in before}
    result = run()
    after = asyncio.run(_backend_pids(dsn))
    app1 = _cpu_seconds([server_pid])
    db = sum(_cpu_seconds([pid]) - db0.get(pid, 0.0) for pid in after)
    return result, app1 - app0, db


def measured(dsn: str, server_pid: int, run: Any) -> tuple[Load, dict[str, float]]:
    """Run `run()` (a wrk load); also return the CPU the server process and the database
    backends serving it used, per 2xx request (ms): on a shared machine this is steadier
    than the rate itself."""
    load, app, db = cpu_during(dsn, server_pid, run)
    ok = max(load.requests - load.non_2xx, 1)
    return load, {
        "server_cpu_ms": round(app * 1000 / ok, 2),
        "db_cpu_ms": round(db * 1000 / ok, 2),
    }


def combined(parts: list[tuple[Load, dict[str, float]]]) -> tuple[Load, dict[str, float]]:
    """Equal-length wrk slices as one run: the mean rate, the median p50, the worst p99, and
    CPU per 2xx request over all of them."""
    loads = [load for load, _ in parts]
    oks = [max(load.requests - load.non_2xx, 1) for load in loads]
    cpu = {
        key: round(sum(c[key] * ok for (_, c), ok in zip(parts, oks, strict=True)) / sum(oks), 2)
        for key in ("server_cpu_ms", "db_cpu_ms")
    }
    return Load(
        rps=statistics.fmean(load.rps for load in loads),
        p50_ms=statistics.median(load.p50_ms for load in loads),
        p99_ms=max(load.p99_ms for load in loads),
        requests=sum(load.requests for load in loads),
        errors=sum(load.errors for load in loads),
        non_2xx=sum(load.non_2xx for load in loads),
    ), cpu


CHECK = """
WITH a AS (
    SELECT object_id::bigint AS id, count(*) AS n FROM audit_log
    WHERE object_type = 'check_request' AND action = 'check_request.approve' GROUP BY 1
), e AS (
    SELECT aggregate_id::bigint AS id, count(*) AS n FROM event
    WHERE aggregate_type = 'check_request' AND type = 'check_request.approved' GROUP BY 1
), i AS (
    SELECT check_request_id AS id, count(*) AS n FROM inspection
    WHERE check_request_id IS NOT NULL GROUP BY 1
)
SELECT
    count(*) FILTER (WHERE c.status = 'approved') AS approved,
    count(*) FILTER (WHERE c.status = 'pending') AS pending,
    count(*) FILTER (WHERE c.status NOT IN ('approved', 'pending')) AS other,
    count(*) FILTER (WHERE c.status = 'approved' AND (
        c.version <> 2 OR c.decided_by IS NULL OR c.decided_at IS NULL
        OR c.inspection_id IS NULL
        OR coalesce(a.n, 0) <> 1 OR coalesce(e.n, 0) <> 1 OR coalesce(i.n, 0) <> 1
        OR NOT EXISTS (SELECT 1 FROM inspection x WHERE x.enterprise_uscc = c.enterprise_uscc
                       AND x.id = c.inspection_id AND x.check_request_id = c.id
                       AND x.status = 'scheduled' AND x.code IS NOT NULL))) AS bad_approved,
    count(*) FILTER (WHERE c.status = 'pending' AND (
        c.version <> 1 OR c.decided_by IS NOT NULL OR c.inspection_id IS NOT NULL
        OR a.n IS NOT NULL OR e.n IS NOT NULL OR i.n IS NOT NULL)) AS bad_pending,
    count(*) FILTER (WHERE c.decided_by = c.requester_id) AS self_decided,
    count(*) FILTER (WHERE c.status = 'approved' AND u.agency_code <> c.agency_code)
        AS other_agency
FROM check_request c
LEFT JOIN a ON a.id = c.id
LEFT JOIN e ON e.id = c.id
LEFT JOIN i ON i.id = c.id
LEFT JOIN user_account u ON u.id = c.decided_by
"""


async def check_decisions(dsn: str) -> dict[str, int]:
    """Exactly-once, audit and outbox, counted in the database after the run."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(CHECK)
        return {k: int(v) for k, v in row.items()}
    finally:
        await conn.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Seed, measure the ceiling, load the approve route, check the database."""

    async def prepare(dsn: str) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
        started = time.perf_counter()
        timings = await seed_inspection_history(dsn, args.enterprises, args.per_enterprise)
        log(f"history: {args.enterprises:,} enterprises x {args.per_enterprise}: {timings}")
        by_agency = await seed_requests(dsn, args.requests)
        log(f"{args.requests:,} pending check requests filed set-based "
            f"({time.perf_counter() - started:.1f} s in all)")  # fmt: skip
        return by_agency, await approver_tokens(dsn)

    async def main() -> dict[str, Any]:
        async with scratch_database(keep=args.keep) as dsn:
            if args.keep:
                log(f"database kept: {dsn}")
            by_agency, tokens = await prepare(dsn)
            return await asyncio.to_thread(load, dsn, by_agency, tokens)

    def load(
        dsn: str, by_agency: dict[str, list[int]], tokens: dict[str, list[str]]
    ) -> dict[str, Any]:
        ids = interleave(by_agency)
        warm, main_ids = ids[: args.warmup_ids], ids[args.warmup_ids :]
        slices = 1 if args.no_ceiling else max(1, args.slices)
        slice_s = max(1, round(args.seconds / slices))
        chunk = len(main_ids) // slices
        workdir = Path(tempfile.mkdtemp(prefix="ih-approval-"))
        env = {"INSPECTION_HUB_DATABASE_URL": sqlalchemy_url(dsn)}
        profile = Path(args.profile) if args.profile else None
        server = Server("inspection_hub.main:create_app", env=env, profile_to=profile)
        ceiling_srv = None
        if not args.no_ceiling:
            ceiling_srv = Server("bench.ceilings:bare_app", env={"BENCH_DSN": dsn})
        spy = None
        ceilings: list[tuple[Load, dict[str, float]]] = []
        runs: list[tuple[Load, dict[str, float]]] = []
        exhausted = False
        try:
            server.wait_ready()
            idle = server.rss_mib()
            warmup = wrk(server.base + "/healthz", lua=approve_lua(warm, tokens, workdir),
                         duration=WARMUP_SECONDS, connections=args.connections)  # fmt: skip
            if ceiling_srv is not None:
                ceiling_srv.wait_ready("/ready")
                wrk(ceiling_srv.base + "/insert", lua=INSERT_LUA, duration=WARMUP_SECONDS,
                    connections=args.connections)  # fmt: skip
            if args.py_spy:
                spy = _start_py_spy(server.proc.pid, args.py_spy, args.seconds)
            load_started = loadavg()
            # Ceiling and approvals in alternating slices: the machine's speed drifts by a third
            # within minutes, and alternating puts the same drift under both.
            for i in range(slices):
                if ceiling_srv is not None:
                    insert = partial(wrk, ceiling_srv.base + "/insert", lua=INSERT_LUA,
                                     duration=slice_s, connections=args.connections)  # fmt: skip
                    ceilings.append(measured(dsn, ceiling_srv.proc.pid, insert))
                part = main_ids[i * chunk : (i + 1) * chunk]
                approve = partial(wrk, server.base + "/healthz",
                                  lua=approve_lua(part, tokens, workdir), duration=slice_s,
                                  connections=args.connections)  # fmt: skip
                runs.append(measured(dsn, server.proc.pid, approve))
                exhausted = exhausted or runs[-1][0].requests > len(part)
            load_ended = loadavg()
            if spy is not None:
                spy.wait(timeout=args.seconds + 60)
            peak = server.peak_mib()
        finally:
            server.stop()
            if ceiling_srv is not None:
                ceiling_srv.stop()
        result, cpu = combined(runs)
        ceiling, ceiling_cpu = combined(ceilings) if ceilings else (None, None)
        if ceiling is not None and ceiling_cpu is not None:
            log(f"ceiling (FastAPI + 1 asyncpg insert), {slices} slices of {slice_s} s alternating "
                f"with the approvals: {ceiling.rps:,.0f} req/s, p50 {ceiling.p50_ms:.1f} ms, "
                f"p99 {ceiling.p99_ms:.1f} ms, CPU per request: server "
                f"{ceiling_cpu['server_cpu_ms']} ms, PostgreSQL {ceiling_cpu['db_cpu_ms']} ms; "
                f"per slice {[round(c.rps) for c, _ in ceilings]} vs approvals "
                f"{[round(r.rps) for r, _ in runs]} req/s")  # fmt: skip
        ok_2xx = result.requests - result.non_2xx
        checks = asyncio.run(check_decisions(dsn))
        return {
            "enterprises": args.enterprises,
            "requests_seeded": args.requests,
            "seconds": slice_s * slices,
            "slices": slices,
            "connections": args.connections,
            "ceiling": None if ceiling is None else _load_dict(ceiling) | (ceiling_cpu or {}),
            "approve": _load_dict(result) | cpu | {"ok_2xx": ok_2xx, "ids_exhausted": exhausted},
            "warmup_2xx": warmup.requests - warmup.non_2xx,
            "ratio_to_ceiling": None if ceiling is None else round(result.rps / ceiling.rps, 3),
            "idle_rss_mib": round(idle, 1),
            "peak_mib": round(peak, 1),
            "load_average": {"start": load_started, "end": load_ended},
            "db": checks,
        }

    return asyncio.run(main())


def _start_py_spy(pid: int, out: str, seconds: int) -> Any:
    import subprocess

    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [str(spy), "record", "-p", str(pid), "-d", str(seconds), "-r", "200", "-f", "raw",
         "-o", out, "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _load_dict(load: Load) -> dict[str, Any]:
    return {
        "rps": round(load.rps, 1),
        "p50_ms": load.p50_ms,
        "p99_ms": load.p99_ms,
        "requests": load.requests,
        "non_2xx": load.non_2xx,
        "errors": load.errors,
    }


def report(data: dict[str, Any]) -> None:
    """The figure lines (bench/__main__.py reads the JSON after them)."""
    a, db = data["approve"], data["db"]
    log(f"POST /v1/check-requests/{{id}}/approve: {a['rps']:,.0f} req/s, p50 {a['p50_ms']:.1f} ms, "
        f"p99 {a['p99_ms']:.1f} ms, {a['ok_2xx']:,} 2xx of {a['requests']:,} "
        f"({a['errors']} socket errors), load {data['load_average']['start']} -> "
        f"{data['load_average']['end']}")  # fmt: skip
    log(f"CPU per approval: server {a['server_cpu_ms']} ms, PostgreSQL backends "
        f"{a['db_cpu_ms']} ms")  # fmt: skip
    log(f"server memory: idle {data['idle_rss_mib']:.0f} MiB, peak (VmHWM) "
        f"{data['peak_mib']:.0f} MiB")  # fmt: skip
    if data["ceiling"] is not None:
        log(f"insert ceiling {data['ceiling']['rps']:,.0f} req/s: ratio "
            f"{data['ratio_to_ceiling'] * 100:.0f} % (target >= 40 %)")  # fmt: skip
    # Requests still in flight when a wrk run stops (warm-up, each slice) may commit uncounted.
    seen = a["ok_2xx"] + data["warmup_2xx"]
    lag = db["approved"] - seen
    good = (
        db["bad_approved"] == 0
        and db["bad_pending"] == 0
        and db["other"] == 0
        and db["self_decided"] == 0
        and db["other_agency"] == 0
        and 0 <= lag <= 2 * data["connections"] * (data["slices"] + 1)
    )
    log(f"correctness: {'OK' if good else 'FAILED'}: {db['approved']:,} approved in the database "
        f"({seen:,} 2xx seen by wrk incl. warm-up), each with exactly one decision, one audit "
        f"row, one event, one inspection: {db['approved'] - db['bad_approved']:,}; pending "
        f"untouched: {db['pending'] - db['bad_pending']:,} of {db['pending']:,}; self-approved "
        f"{db['self_decided']}, other agency {db['other_agency']}")  # fmt: skip
    if a["ids_exhausted"]:
        log("WARNING: the id list ran out (seed more with --requests); the figure is not valid")
    data["correct"] = good
    print(json.dumps(data, indent=2))


def main() -> None:
    """Parse the flags, run, print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--enterprises", type=int, default=20_000)
    parser.add_argument("--per-enterprise", type=int, default=3, help="inspections of history")
    parser.add_argument("--requests", type=int, default=40_000, help="pending requests to seed")
    parser.add_argument("--warmup-ids", type=int, default=4_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--no-ceiling", action="store_true", help="skip the insert ceiling")
    parser.add_argument(
        "--slices", type=int, default=4, help="ceiling and approvals alternate in this many slices"
    )
    parser.add_argument("--profile", default="", help="pyinstrument the server into this file")
    parser.add_argument("--py-spy", default="", help="py-spy record (raw) the server's main run")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    if not wrk_available():
        sys.exit("wrk is required (apt-get install -y wrk)")
    report(run(args))


if __name__ == "__main__":
    main()
