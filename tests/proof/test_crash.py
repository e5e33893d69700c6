"""Crash tests against `inspection-hub serve` in a subprocess on the test database.

* SIGKILL during a large import: nothing half-written (all rows or none, no stray audit row).
* Every backend connection of the app terminated (pg_terminate_backend) under write load: the
  service recovers (/readyz 200 again, writes succeed) and nothing is lost or doubled (each
  acknowledged write is stored exactly once, with exactly one audit row).
The audit chain verifies after each; tamper detection itself is tests/foundation/test_audit.py.
Worker kills mid-way through deliveries: tests/webhooks/test_worker_crash.py; mid-way through
detection: tests/conflicts/test_detector_crash.py.
"""

from __future__ import annotations

import asyncio
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from bench.import_bench import make_csv

from inspection_hub.audit.service import verify_chain
from tests.proof.server import ServedApp, server_env, start_serve, stop

ROWS = 150_000


async def _wait(predicate: Any, bound_s: float = 60, interval: float = 0.05) -> bool:
    """Poll an async predicate until true or the (generous) bound passes."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return False


async def _app_backends(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(
            "SELECT pid, state, query FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'inspection-hub'"
        )
    finally:
        await conn.close()


async def _scalar(dsn: str, sql: str) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


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
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'inspection-hub'"
            )
        )
    finally:
        await conn.close()


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
    results: dict[str, int] = {}
    terminated = 0
    try:
        async with httpx.AsyncClient(base_url=app.base, timeout=30) as client:

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

            certs = [f"KILL-{i:05d}" for i in range(600)]
            sem = asyncio.Semaphore(8)

            async def bounded(cert: str) -> None:
                async with sem:
                    await create(cert)

            load = asyncio.gather(*(bounded(c) for c in certs))
            for round_no in range(3):  # terminate every app connection three times under load
                target = 100 + 150 * round_no
                await _wait(lambda n=target: _some_done(results, n), bound_s=120)
                terminated += await _terminate_app_backends(dsn)
            await load

            async def ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            assert await _wait(ready), "the service did not become ready again"
            failed = [c for c, s in results.items() if s != 201]
            # the client retries what failed: each is created once, or was committed already
            for cert in failed:
                await create(cert)
            after = {c: results[c] for c in failed}
    finally:
        stop(app)

    assert terminated >= 3
    assert set(after.values()) <= {201, 409}
    acknowledged = sorted(c for c in certs if results[c] in (201, 409))
    assert acknowledged == sorted(certs)
    counts = await _counts(dsn)
    assert counts["inspectors"] == {c: 1 for c in certs}
    assert counts["audit"] == {c: 1 for c in certs}
    await _chain_ok(sessionmaker)


async def _some_done(results: dict[str, int], n: int) -> bool:
    return len(results) >= n


async def _counts(dsn: str) -> dict[str, dict[str, int]]:
    conn = await asyncpg.connect(dsn)
    try:
        inspectors = await conn.fetch(
            "SELECT certificate_no, count(*) FROM inspector "
            "WHERE certificate_no LIKE 'KILL-%' GROUP BY 1"
        )
        audit = await conn.fetch(
            "SELECT after->>'certificate_no', count(*) FROM audit_log "
            "WHERE action = 'inspector.create' GROUP BY 1"
        )
    finally:
        await conn.close()
    return {
        "inspectors": {r[0]: int(r[1]) for r in inspectors},
        "audit": {r[0]: int(r[1]) for r in audit if r[0] and r[0].startswith("KILL-")},
    }
