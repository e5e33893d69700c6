"""The benchmark suite: every scenario against the database's own limits, in one table.

    python -m bench [--scale small|district|province] [--only import,draw,read,...] [--profile]

Ceilings are measured in the same run on the same database server (bench/ceilings.py): raw
asyncpg inserts, indexed selects and COPY, and a bare FastAPI endpoint doing one insert / one
indexed select under the same wrk load as the service. Scenarios call the per-issue bench modules
(bench/<name>_bench.py); a scenario whose module is not in this checkout prints "not available".
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import asyncpg
import httpx

from bench.ceilings import (
    ceiling_figures,
    cpu_ratio,
    fill_select_table,
    http_ceilings,
    raw_ceilings,
    select_lua,
)
from bench.common import (
    PG,
    REPO,
    Figure,
    Load,
    Server,
    loadavg,
    make_token,
    paths_lua,
    sample_keys,
    scratch_database,
    seed_inspection_history,
    serving,
    sqlalchemy_url,
    wrk,
    wrk_available,
)


@dataclass(frozen=True)
class Scale:
    """Data-set sizes for one --scale."""

    name: str
    enterprises: int  # seeded history for the HTTP read scenarios
    inspections_per_enterprise: int
    import_rows: int
    draw_population: int
    http_seconds: int
    connections: int
    copy_rows: int

    @property
    def pending_requests(self) -> int:
        """How many pending check requests the approval and pre-check scenarios file: enough
        for every approval wrk can send in the scale's slices, each request approved once."""
        return 4_000 + 3_000 * self.http_seconds


SCALES = {
    "small": Scale("small", 20_000, 3, 20_000, 100_000, 5, 16, 200_000),
    "district": Scale("district", 100_000, 3, 100_000, 1_000_000, 10, 16, 500_000),
    "province": Scale("province", 10_000_000, 3, 300_000, 1_000_000, 15, 16, 1_000_000),
}


@dataclass
class Context:
    """Ceilings measured in this run, for the ratios."""

    scale: Scale
    raw: dict[str, float]
    http: dict[str, Load]
    http_cpu: dict[str, dict[str, float]]
    profile_dir: Path | None
    log: list[str]


def _module_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _run_module(ctx: Context, module: str, *args: str, timeout: int = 3600) -> str:
    """Run a per-issue bench module as its own process; return its stdout (logged)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", module, *args]
    started = time.perf_counter()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False, cwd=REPO
    )
    took = time.perf_counter() - started
    ctx.log.append(f"$ {' '.join(cmd[1:])}   ({took:.0f} s, rc {proc.returncode})\n{proc.stdout}")
    if proc.returncode != 0:
        ctx.log.append(proc.stderr[-3000:])
        raise RuntimeError(f"{module} exited with {proc.returncode}: {proc.stderr[-300:]}")
    return proc.stdout


def _num(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    if not m:
        raise ValueError(f"figure not found: {pattern}")
    return float(m.group(1).replace(",", ""))


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _pct(a: float, b: float) -> str:
    return f"{a / b:.0%}" if b else "n/a"


# --- scenarios over per-issue modules -----------------------------------------------------------


def scenario_import(ctx: Context) -> list[Figure]:
    """Enterprise import: one CSV upload over HTTP (bench/import_bench.py) vs raw COPY."""
    out = _run_module(ctx, "bench.import_bench", "--rows", str(ctx.scale.import_rows))
    rate = _num(r"import \(all new\).*= ([\d,]+) rows/s", out)
    update = _num(r"re-import \(all updated\).*= ([\d,]+) rows/s", out)
    peak = _num(r"peak \(VmHWM\) ([\d.]+) MiB", out)
    copy = ctx.raw["copy_rows"]
    return [
        Figure(
            f"enterprise import ({ctx.scale.import_rows:,} rows, new)",
            f"{rate:,.0f} rows/s",
            f"raw COPY {copy:,.0f} rows/s",
            _ratio(rate, copy),
            peak_mib=peak,
        ),
        Figure(
            "enterprise re-import (all updated)",
            f"{update:,.0f} rows/s",
            f"raw COPY {copy:,.0f} rows/s",
            _ratio(update, copy),
            peak_mib=peak,
        ),
    ]


def scenario_draw(ctx: Context) -> list[Figure]:
    """Plan draw through the service over N enterprises (bench/draw_db_bench.py)."""
    n = ctx.scale.draw_population
    out = _run_module(ctx, "bench.draw_db_bench", "--n", str(n), "--fixed-count", "2000")
    took = _num(r"draw through the service: ([\d.]+) s", out)
    peak = _num(r"draw through the service:.*peak RSS ([\d.]+) MiB", out)
    verify = _num(r"verify \(stored record.*?: ([\d.]+) s", out)
    copy_s = n / ctx.raw["copy_rows"]
    return [
        Figure(
            f"plan draw over {n:,} enterprises",
            f"{took:.2f} s ({n / took:,.0f} enterprises/s)",
            f"raw COPY of {n:,} rows {copy_s:.2f} s",
            _ratio(copy_s, took),
            peak_mib=peak,
            note=f"verify {verify:.2f} s",
        )
    ]


def _generic(
    module: str, args: Callable[[Scale], list[str]], label: str
) -> Callable[..., list[Figure]]:
    """A scenario that runs a module and shows its last figure lines (format not yet adapted)."""

    def run(ctx: Context) -> list[Figure]:
        out = _run_module(ctx, module, *args(ctx.scale))
        lines = [ln.strip() for ln in out.splitlines() if re.search(r"\d", ln)]
        return [Figure(label, "; ".join(lines[-3:])[:160], note="see the run log")]

    return run


# --- scenarios measured here (service over HTTP on seeded history) -----------------------------


def scenario_reads(ctx: Context) -> list[Figure]:
    """Inspection reads over HTTP on a seeded history: one inspection, an enterprise's year."""
    scale = ctx.scale

    async def prepare(dsn: str) -> tuple[dict[str, float], list[str], list[int], str]:
        timings = await seed_inspection_history(
            dsn, scale.enterprises, scale.inspections_per_enterprise
        )
        usccs, ids = await sample_keys(dsn)
        token = await make_token(dsn, "supervisor")
        await fill_select_table(dsn)  # the select ceiling measured beside the reads
        return timings, usccs, ids, token

    async def run() -> list[Figure]:
        async with scratch_database() as dsn:
            timings, usccs, ids, token = await prepare(dsn)
            ctx.log.append(f"seeded {scale.enterprises:,} enterprises: {timings}")
            return await asyncio.to_thread(_load_reads, ctx, dsn, usccs, ids, token)

    return asyncio.run(run())


def _service(ctx: Context, dsn: str, profile_name: str) -> Server:
    """The service on `dsn` under the suite's uvicorn settings (pyinstrument with --profile)."""
    profile = ctx.profile_dir / profile_name if ctx.profile_dir is not None else None
    env = {"INSPECTION_HUB_DATABASE_URL": sqlalchemy_url(dsn)}
    return Server("inspection_hub.main:create_app", env=env, profile_to=profile)


def _load_reads(
    ctx: Context, dsn: str, usccs: list[str], ids: list[int], token: str
) -> list[Figure]:
    headers = {"Authorization": f"Bearer {token}"}
    figures = []
    server = _service(ctx, dsn, "inspection_read.txt")
    try:
        server.wait_ready()
        idle = server.rss_mib()
        for label, paths in (
            ("inspection read GET /v1/inspections/{id}", [f"/v1/inspections/{i}" for i in ids]),
            (
                "enterprise history GET /v1/enterprises/{uscc}/inspections",
                [f"/v1/enterprises/{u}/inspections" for u in usccs],
            ),
        ):
            figures.append(
                _read_figure(ctx, server, dsn, label, paths, headers, f"idle RSS {idle:.0f} MiB")
            )
    finally:
        server.stop()
    return figures


READ_SLICES = 4
READ_WARMUP_SECONDS = 2


def _read_figure(
    ctx: Context,
    server: Server,
    dsn: str,
    label: str,
    paths: list[str],
    headers: dict[str, str],
    note: str,
) -> Figure:
    """wrk GETs over (up to 2,000 of) `paths` on a running server against the select ceiling,
    as the write scenarios are measured against theirs: the bare select endpoint runs beside the
    service on the scenario's database (`fill_select_table` first), both are warmed up, then the
    two are loaded in alternating slices so that the machine's drift weighs on both; the note
    adds the suite's select ceiling and the CPU each answered request cost the server and its
    PostgreSQL backends."""
    from bench.approval_bench import combined, measured

    scale = ctx.scale
    select = ctx.http["select"]
    slice_s = max(1, round(scale.http_seconds / READ_SLICES))
    lua = paths_lua("GET", paths[:2000])

    def reads(seconds: int) -> Callable[[], Load]:
        return partial(wrk, server.base + "/healthz", lua=lua, duration=seconds,
                       connections=scale.connections, headers=headers)  # fmt: skip

    with serving("bench.ceilings:bare_app", env={"BENCH_DSN": dsn}, ready_path="/ready") as bare:

        def selects(seconds: int) -> Callable[[], Load]:
            return partial(wrk, bare.base + "/select/1", lua=select_lua(), duration=seconds,
                           connections=scale.connections)  # fmt: skip

        selects(READ_WARMUP_SECONDS)()
        reads(READ_WARMUP_SECONDS)()
        ceilings, runs = [], []
        for _ in range(READ_SLICES):
            ceilings.append(measured(dsn, bare.proc.pid, selects(slice_s)))
            runs.append(measured(dsn, server.proc.pid, reads(slice_s)))
    (load, cpu), (own, own_cpu) = combined(runs), combined(ceilings)
    bad = (
        f"; {load.non_2xx} non-2xx, {load.errors} socket errors"
        if load.non_2xx or load.errors
        else ""
    )
    return Figure(
        f"{label} ({scale.enterprises:,} ent.)",
        f"{load.rps:,.0f} req/s",
        f"FastAPI select {own.rps:,.0f} req/s (alternating)",
        _ratio(load.rps, own.rps),
        load.p50_ms,
        load.p99_ms,
        server.peak_mib(),
        note=f"target >= 50 %; against the suite's select ceiling {select.rps:,.0f} req/s "
        f"({_pct(load.rps, select.rps)}); {note}{bad}; CPU/request server "
        f"{cpu['server_cpu_ms']} + PostgreSQL {cpu['db_cpu_ms']} ms, ceiling "
        f"{own_cpu['server_cpu_ms']} + {own_cpu['db_cpu_ms']} ms (by CPU "
        f"{cpu_ratio(own_cpu, cpu)})",
    )


# The pre-check a sample answer must show: the enterprise's inspections dated (visit date, else
# window start) in the request's year, other than the request's own (build_precheck's rule).
_EXPECTED_HISTORY = """
SELECT c.id, count(i.id) AS n
FROM check_request c
LEFT JOIN inspection i
       ON i.enterprise_uscc = c.enterprise_uscc
      AND extract(year FROM coalesce(i.visit_date, i.window_start))
          = extract(year FROM c.window_start)
      AND i.check_request_id IS DISTINCT FROM c.id
WHERE c.id = ANY($1::bigint[])
GROUP BY c.id
ORDER BY n DESC, c.id
LIMIT 1
"""


def scenario_precheck(ctx: Context) -> list[Figure]:
    """GET /v1/check-requests/{id} (one request with a fresh pre-check) over HTTP."""
    from bench.approval_bench import interleave, seed_requests

    scale = ctx.scale
    n_requests = scale.pending_requests  # as the approval scenario files them

    async def prepare(dsn: str) -> tuple[list[int], str, tuple[int, int]]:
        timings = await seed_inspection_history(
            dsn, scale.enterprises, scale.inspections_per_enterprise
        )
        ctx.log.append(f"seeded {scale.enterprises:,} enterprises: {timings}")
        ids = [i for i, _ in interleave(await seed_requests(dsn, n_requests))][:2000]
        conn = await asyncpg.connect(dsn)
        try:
            sample = await conn.fetchrow(_EXPECTED_HISTORY, ids)
        finally:
            await conn.close()
        token = await make_token(dsn, "supervisor")
        await fill_select_table(dsn)  # the select ceiling measured beside the pre-checks
        return ids, token, (int(sample["id"]), int(sample["n"]))

    async def run() -> list[Figure]:
        async with scratch_database() as dsn:
            ids, token, sample = await prepare(dsn)
            ctx.log.append(f"{n_requests:,} pending check requests filed set-based")
            return await asyncio.to_thread(_load_precheck, ctx, dsn, ids, token, sample)

    return asyncio.run(run())


def _load_precheck(
    ctx: Context, dsn: str, ids: list[int], token: str, sample: tuple[int, int]
) -> list[Figure]:
    headers = {"Authorization": f"Bearer {token}"}
    server = _service(ctx, dsn, "precheck_read.txt")
    try:
        server.wait_ready()
        check = _check_precheck_answer(server, headers, *sample)
        ctx.log.append(f"precheck sample: {check}")
        figure = _read_figure(
            ctx,
            server,
            dsn,
            "check-request pre-check GET /v1/check-requests/{id}",
            [f"/v1/check-requests/{i}" for i in ids],
            headers,
            f"{len(ids):,} pending requests read; {check}",
        )
    finally:
        server.stop()
    return [figure]


def _check_precheck_answer(server: Server, headers: dict[str, str], rid: int, expected: int) -> str:
    """One answer checked, so that a broken route cannot pass for a fast one."""
    r = httpx.get(f"{server.base}/v1/check-requests/{rid}", headers=headers, timeout=10)
    if r.status_code != 200:
        return f"correctness FAILED: request {rid} answered {r.status_code}"
    body = r.json()
    pre = body.get("precheck") or {}
    got = len(pre.get("inspections", []))
    ok = (
        body.get("id") == rid
        and r.headers.get("etag") == f'"{body.get("version")}"'
        and got == expected
        and pre.get("cap", {}).get("count") is not None
    )
    return (
        f"correctness {'OK' if ok else 'FAILED'} (request {rid}: {got} inspections in its "
        f"year's pre-check, {expected} expected)"
    )


def scenario_checkrequest(ctx: Context) -> list[Figure]:
    """POST /v1/check-requests with the pre-check under wrk (bench/checkrequest_bench.py)."""
    import json

    scale = ctx.scale
    out = _run_module(
        ctx,
        "bench.checkrequest_bench",
        "--enterprises", str(scale.enterprises if scale.name != "province" else 1_000_000),
        "--inspections", str(scale.enterprises * 3 if scale.name != "province" else 3_000_000),
        "--seconds", str(scale.http_seconds),
        "--connections", str(scale.connections),
    )  # fmt: skip
    data = json.loads(out[out.rindex("\n{") + 1 :] if not out.startswith("{") else out)
    sat, fixed = data["submit_saturated"], data["submit_fixed_rate"]
    insert, own = ctx.http["insert"], data["ceiling"]
    return [
        Figure(
            f"check-request submit + pre-check ({data['enterprises']:,} ent.)",
            f"{sat['rps']:,.0f} req/s",
            f"FastAPI insert {own['rps']:,.0f} req/s (alternating)",
            _ratio(sat["rps"], own["rps"]),
            sat.get("p50_ms"),
            sat.get("p99_ms"),
            note=f"target >= 40 %; against the suite's insert ceiling {insert.rps:,.0f} req/s "
            f"({_pct(sat['rps'], insert.rps)}); "
            f"p99 at 200 req/s offered: {fixed.get('p99_ms', float('nan')):.0f} ms; "
            f"CPU/request server {sat.get('server_cpu_ms', float('nan'))} + PostgreSQL "
            f"{sat.get('db_cpu_ms', float('nan'))} ms, ceiling "
            f"{data['ceiling'].get('server_cpu_ms', float('nan'))} + "
            f"{data['ceiling'].get('db_cpu_ms', float('nan'))} ms (by CPU "
            f"{cpu_ratio(data['ceiling'], sat) if 'server_cpu_ms' in sat else 'n/a'})",
        )
    ]


def scenario_approval(ctx: Context) -> list[Figure]:
    """Approvals over HTTP under wrk, each request approved once (bench/approval_bench.py)."""
    import json

    scale = ctx.scale
    args = [
        "--enterprises", str(min(scale.enterprises, 1_000_000)),
        "--requests", str(scale.pending_requests),
        "--seconds", str(scale.http_seconds),
        "--connections", str(scale.connections),
    ]  # fmt: skip
    if ctx.profile_dir is not None:
        args += ["--profile", str(ctx.profile_dir / "approval.txt")]
    out = _run_module(ctx, "bench.approval_bench", *args)
    data = json.loads(out[out.index("\n{") + 1 :])
    approve, insert = data["approve"], ctx.http["insert"]
    own = data["ceiling"]
    return [
        Figure(
            f"approval decision POST /v1/check-requests/{{id}}/approve ({data['enterprises']:,} "
            "ent.)",
            f"{approve['rps']:,.0f} req/s",
            f"FastAPI insert {own['rps']:,.0f} req/s (alternating)",
            _ratio(approve["rps"], own["rps"]),
            approve["p50_ms"],
            approve["p99_ms"],
            data["peak_mib"],
            note=f"target >= 40 %; against the suite's insert ceiling {insert.rps:,.0f} req/s "
            f"({_pct(approve['rps'], insert.rps)}); correctness "
            f"{'OK' if data['correct'] else 'FAILED'} ({data['db']['approved']:,} approved, each "
            f"1 decision, 1 audit row, 1 event); CPU/request server {approve['server_cpu_ms']} + "
            f"PostgreSQL {approve['db_cpu_ms']} ms, ceiling {own['server_cpu_ms']} + "
            f"{own['db_cpu_ms']} ms (by CPU {cpu_ratio(own, approve)})",
        )
    ]


def scenario_detector(ctx: Context) -> list[Figure]:
    """Pre-check latency and detector throughput (bench/detector_bench.py)."""
    n = ctx.scale.enterprises if ctx.scale.name != "province" else 1_000_000
    out = _run_module(
        ctx, "bench.detector_bench", "--enterprises", str(n), "--inspections", str(3 * n),
        "--samples", "500", "--events", "2000",
    )  # fmt: skip
    p50 = _num(r"pre-check \(.*?\): p50 ([\d.]+) ms", out)
    p99 = _num(r"pre-check \(.*?\): p50 [\d.]+ ms, p99 ([\d.]+) ms", out)
    rate = _num(r"detector: .*?: ([\d,]+) events/s", out)
    peak = _num(r"memory after detector: RSS [\d.]+ MiB, peak ([\d.]+) MiB", out)
    select = ctx.raw["select_pool10"]
    return [
        Figure(
            f"pre-check facts + rules, in process ({n:,} ent.)",
            f"p50 {p50:.2f} ms",
            f"raw indexed select {1000 / ctx.raw['select_1conn']:.2f} ms",
            _ratio(1000 / ctx.raw["select_1conn"], p50),
            p50,
            p99,
            note="ratio: one raw select's latency / pre-check latency",
        ),
        Figure(
            "detector throughput (4 workers)",
            f"{rate:,.0f} events/s",
            f"raw select pool 10 {select:,.0f}/s",
            _ratio(rate, select),
            peak_mib=peak,
        ),
    ]


def scenario_events(ctx: Context) -> list[Figure]:
    """Outbox write/handle rates and lag at 500 events/s (bench/events_bench.py)."""
    seconds = str(min(20, ctx.scale.http_seconds * 2))
    out = _run_module(ctx, "bench.events_bench", "--seconds", seconds, "--backlog", "10000")
    written = _num(r"written: .*= ([\d,]+) events/s", out)
    handled = _num(r"handled: .*= ([\d,]+) events/s", out)
    p50 = _num(r"lag at .*?: p50 ([\d.]+) ms", out)
    p99 = _num(r"lag at .*?p99 ([\d.]+) ms", out)
    insert = ctx.raw["insert_pool10"]
    return [
        Figure(
            "event lag at 500 events/s (commit -> handler)",
            f"p50 {p50:.1f} ms",
            "",
            None,
            p50,
            p99,
        ),
        Figure(
            "outbox writes (100 per transaction)",
            f"{written:,.0f} events/s",
            f"raw insert pool 10 {insert:,.0f}/s",
            _ratio(written, insert),
        ),
        Figure(
            "relay handling, one worker (no-op)",
            f"{handled:,.0f} events/s",
            note="claims batches of events; no single-row ceiling applies",
        ),
    ]


def scenario_report(ctx: Context) -> list[Figure]:
    """Execution report over a year's inspections (bench/report_bench.py)."""
    n = ctx.scale.enterprises * 3
    out = _run_module(
        ctx, "bench.report_bench", "--n", str(n), "--enterprises", str(ctx.scale.enterprises)
    )
    runs = [float(x) for x in re.findall(r"execution report agency=None: ([\d.]+) s", out)]
    best = min(runs)
    scan_s = n / ctx.raw["copy_rows"]
    return [
        Figure(
            f"execution report, all agencies ({n:,} inspections)",
            f"{best:.2f} s (best of {len(runs)})",
            f"raw COPY of {n:,} rows {scan_s:.2f} s",
            _ratio(scan_s, best),
        )
    ]


def scenario_survey(ctx: Context) -> list[Figure]:
    """Survey dispatch and signed callbacks to a local receiver (bench/survey_bench.py)."""
    n = ctx.scale.enterprises
    out = _run_module(ctx, "bench.survey_bench", "--n", str(n))
    dispatch = _num(r"dispatch .*= ([\d,]+) surveys/s", out)
    delivered = _num(r"callbacks: .*= ([\d,]+) deliveries/s", out)
    peak = _num(r"peak RSS of the bench process: ([\d.]+) MiB", out)
    insert = ctx.raw["insert_pool10"]
    return [
        Figure(
            f"survey dispatch ({n:,} due)",
            f"{dispatch:,.0f} surveys/s",
            f"raw insert pool 10 {insert:,.0f}/s",
            _ratio(dispatch, insert),
            peak_mib=peak,
            note="set-based: many rows per statement",
        ),
        Figure("survey callbacks (signed, SSRF-guarded)", f"{delivered:,.0f} deliveries/s"),
    ]


SCENARIOS: dict[str, tuple[str, str | None, Callable[[Context], list[Figure]]]] = {
    # key: (label, module that must exist, runner)
    "import": ("enterprise import", "bench.import_bench", scenario_import),
    "draw": ("plan draw over 1M", "bench.draw_db_bench", scenario_draw),
    "reads": ("inspection reads over HTTP", None, scenario_reads),
    "checkrequest": (
        "check-request submission with pre-check over HTTP",
        "bench.checkrequest_bench",
        scenario_checkrequest,
    ),
    "approval": ("approval decision over HTTP", "bench.approval_bench", scenario_approval),
    "precheck": (
        "check-request pre-check read over HTTP",
        "bench.approval_bench",  # files the pending requests
        scenario_precheck,
    ),
    "detector": ("detector throughput", "bench.detector_bench", scenario_detector),
    "events": ("event lag at 500 events/s", "bench.events_bench", scenario_events),
    "survey": ("survey dispatch", "bench.survey_bench", scenario_survey),
    "report": ("execution report", "bench.report_bench", scenario_report),
}


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None or value != value else format(value, spec)


def print_table(figures: list[Figure]) -> None:
    """The one table."""
    head = (
        "scenario",
        "figure",
        "ceiling (same run)",
        "ratio",
        "p50 ms",
        "p99 ms",
        "peak MiB",
        "note",
    )
    rows = [
        (
            f.scenario,
            f.figure,
            f.ceiling,
            _fmt(None if f.ratio is None else f.ratio * 100, ".0f") + ("%" if f.ratio else ""),
            _fmt(f.p50_ms, ".1f"),
            _fmt(f.p99_ms, ".1f"),
            _fmt(f.peak_mib, ".0f"),
            f.note,
        )
        for f in figures
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    """Measure the ceilings, run the scenarios, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(SCENARIOS))
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the read, pre-check and approval scenarios' servers under pyinstrument (their "
        "figures then include the profiler's overhead: take figures from a run without --profile)",
    )
    parser.add_argument("--log", type=Path, default=None, help="write every module's output here")
    args = parser.parse_args()
    if not wrk_available():
        raise SystemExit("wrk is required (apt-get install -y wrk)")
    scale = SCALES[args.scale]
    only = [s for s in args.only.split(",") if s] or list(SCENARIOS)
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
    print(
        f"# python -m bench --scale {scale.name}{' --only ' + args.only if args.only else ''}\n"
        f"# {platform.node()} {os.cpu_count()} cores, PostgreSQL {PG}, "
        f"load average at start {loadavg()}, {time.strftime('%Y-%m-%d %H:%M:%S')}",
        flush=True,
    )

    async def ceilings() -> tuple[
        dict[str, float], tuple[dict[str, Load], dict[str, dict[str, float]]]
    ]:
        async with scratch_database(migrate=False) as dsn:
            raw = await raw_ceilings(dsn, copy_rows=scale.copy_rows)
            http = await asyncio.to_thread(
                http_ceilings, dsn, int(raw["rows"]), scale.http_seconds, scale.connections
            )
            return raw, http

    raw, (http, http_cpu) = asyncio.run(ceilings())
    profile_dir = Path(tempfile.mkdtemp(prefix="ih-profile-")) if args.profile else None
    ctx = Context(scale, raw, http, http_cpu, profile_dir, [])
    figures = ceiling_figures(raw, http, http_cpu)
    for key in only:
        label, module, runner = SCENARIOS[key]
        if module is not None and not _module_available(module):
            figures.append(Figure(label, "not available", note=f"{module} is not in this checkout"))
            continue
        started = time.perf_counter()
        try:
            figures.extend(runner(ctx))
        except Exception as exc:  # a failed scenario is reported, not hidden
            figures.append(Figure(label, "FAILED", note=f"{type(exc).__name__}: {exc}"[:200]))
        print(
            f"# {key} done in {time.perf_counter() - started:.0f} s, load {loadavg()}", flush=True
        )
    print()
    print_table(figures)
    print(f"\n# load average at end {loadavg()}")
    if profile_dir is not None:
        print(f"# profiles in {profile_dir}: inspection_read.txt, precheck_read.txt, approval.txt")
    if args.log:
        args.log.write_text("\n".join(ctx.log), encoding="utf-8")


if __name__ == "__main__":
    main()
