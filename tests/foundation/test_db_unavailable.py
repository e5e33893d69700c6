"""D33: a database out of reach is a 503 problem with Retry-After, not a 500 with a traceback;
a bad statement or an unrelated OSError is still what it was."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from inspection_hub.auth.principal import Principal, Role
from inspection_hub.auth.tokens import hash_token
from inspection_hub.config import Settings
from inspection_hub.db.availability import database_unavailable, log_pass_failure
from inspection_hub.db.deps import autocommit_connection
from inspection_hub.db.session import make_engine, make_sessionmaker, make_statement_pool
from inspection_hub.events.worker import EventWorker
from inspection_hub.main import create_app
from tests.conftest import private_client


async def test_a_connection_refused_is_unavailable_an_oserror_elsewhere_is_not(
    tmp_path: Path,
) -> None:
    with pytest.raises(FileNotFoundError) as refused:  # no server's socket in that directory
        await asyncpg.connect(f"postgresql://postgres@/x?host={tmp_path}")
    assert database_unavailable(refused.value)
    with pytest.raises(FileNotFoundError) as missing:  # the same error, not from the driver
        (tmp_path / "no-such-file").read_text()
    assert not database_unavailable(missing.value)


async def test_a_bad_statement_is_not_unavailable(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        with pytest.raises(asyncpg.DivisionByZeroError) as bad:
            await conn.fetchval("SELECT 1 / 0")
        assert not database_unavailable(bad.value)
    finally:
        await conn.close()


@pytest.mark.parametrize("pause", [0.0, 0.02])
async def test_a_statement_pool_connection_the_server_ended_is_unavailable(
    pause: float, database_url: str, dsn: str, settings: Settings
) -> None:
    """Whichever error asyncpg gives the next statement (it depends on whether the server's
    goodbye was read yet: "closed in the middle of operation", "connection is closed", or
    "another operation is in progress"), the request's connection counts as lost."""
    pool = await make_statement_pool(database_url, settings)
    request: Any = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(statement_pool=pool)))
    killer = await asyncpg.connect(dsn)

    async def ended_then_used() -> None:
        async with autocommit_connection(request) as conn:
            await killer.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
            await asyncio.sleep(pause)
            await conn.fetchval("SELECT 1")

    try:
        for _ in range(5):
            with pytest.raises(Exception) as lost:  # noqa: PT011 - the driver picks which
                await ended_then_used()
            assert database_unavailable(lost.value), repr(lost.value)
        async with autocommit_connection(request) as conn:  # the pool replaced it
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await killer.close()
        await pool.close()


async def test_through_sqlalchemy_too(database_url: str, dsn: str) -> None:
    engine = create_async_engine(database_url, pool_size=1, max_overflow=0)
    killer = await asyncpg.connect(dsn)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as bad:
                await conn.execute(text("SELECT 1 / 0"))
            assert not database_unavailable(bad.value)
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await killer.execute("SELECT pg_terminate_backend($1)", pid)
            with pytest.raises(DBAPIError) as lost:
                await conn.execute(text("SELECT 1"))
            assert database_unavailable(lost.value), repr(lost.value)
    finally:
        await killer.close()
        await engine.dispose()


async def test_the_api_answers_503_with_retry_after_on_both_pools(
    settings: Settings, sessionmaker: Any, tmp_path: Path
) -> None:
    """An app whose database is not there: the session path (resolving a token) and the
    statement pool's path (a cached token, then GET /v1/inspections/{id})."""
    app = create_app(settings, f"postgresql+asyncpg://postgres@/ih?host={tmp_path}")
    async with private_client(app) as client:
        r = await client.get("/v1/me", headers={"Authorization": "Bearer unknown-token"})
        _assert_unavailable(r, "/v1/me")

        token = "cached-token"
        app.state.token_cache.put(
            hash_token(token, settings.token_pepper),
            Principal(1, "wu", "wu", Role.supervisor, None),
        )
        r = await client.get("/v1/inspections/1", headers={"Authorization": f"Bearer {token}"})
        _assert_unavailable(r, "/v1/inspections/1")

        ready = await client.get("/readyz")
        assert ready.status_code == 503


def _assert_unavailable(r: httpx.Response, path: str) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "2"
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"].endswith("/database-unavailable")
    assert (body["status"], body["instance"]) == (503, path)
    assert "Retry-After" in body["detail"]


async def test_a_background_pass_logs_an_outage_as_one_warning_and_a_bug_as_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("tests.background")
    with pytest.raises(FileNotFoundError) as refused:
        await asyncpg.connect(f"postgresql://postgres@/x?host={tmp_path}")
    bug = ValueError("a bug")
    with caplog.at_level(logging.WARNING, logger="tests.background"):
        log_pass_failure(logger, "event relay pass failed", refused.value)
        log_pass_failure(logger, "job failed", bug, job="surveys.dispatch")
    outage, error = caplog.records
    assert (outage.levelname, outage.exc_info) == ("WARNING", None)
    assert outage.getMessage().startswith(
        "event relay pass failed: database unavailable (FileNotFoundError"
    )
    assert error.levelname == "ERROR"
    assert error.exc_info is not None
    assert error.exc_info[1] is bug
    assert error.__dict__["job"] == "surveys.dispatch"


async def test_an_event_worker_without_its_database_logs_one_line_warnings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The LISTEN connection, the relay and the webhook claim all fail to connect (no server's
    socket in the directory): each failure is a WARNING line naming the outage, no traceback."""
    engine = create_async_engine(f"postgresql+asyncpg://postgres@/x?host={tmp_path}")
    settings = Settings(env="test", event_poll_seconds=0.2, shutdown_grace_seconds=2)
    async with httpx.AsyncClient() as http:
        worker = EventWorker(engine, make_sessionmaker(engine), http, settings)
        with caplog.at_level(logging.WARNING, logger="inspection_hub"):
            await worker.start()
            await asyncio.sleep(1.5)
            await worker.stop()
    await engine.dispose()
    records = [r for r in caplog.records if r.name.startswith("inspection_hub")]
    listen = [r for r in records if r.getMessage().startswith("LISTEN connection lost")]
    assert listen, [r.getMessage() for r in records]
    assert all("database unavailable (FileNotFoundError" in r.getMessage() for r in listen)
    assert [(r.levelname, r.exc_info) for r in records] == [("WARNING", None)] * len(records)


async def test_a_listen_connection_the_server_ended_is_an_outage_too(
    database_url: str, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The pooled connection LISTEN is given was ended by the server (a restart) after it was
    last used: asyncpg says so as a driver error of its own, which is still the outage."""
    settings = Settings(
        env="test", event_poll_seconds=0.2, shutdown_grace_seconds=2, db_pool_size=1
    )
    engine = make_engine(database_url, settings)
    killer = await asyncpg.connect(dsn)
    try:
        async with engine.connect() as conn:  # leaves one connection in the pool, used just now
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await killer.execute("SELECT pg_terminate_backend($1)", pid)
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient() as http:
            worker = EventWorker(engine, make_sessionmaker(engine), http, settings)
            with caplog.at_level(logging.WARNING, logger="inspection_hub"):
                await worker.start()  # LISTEN's task runs first and takes the ended connection
                await asyncio.sleep(1.5)
                await worker.stop()
    finally:
        await killer.close()
        await engine.dispose()
    records = [r for r in caplog.records if r.name.startswith("inspection_hub")]
    listen = [r for r in records if r.getMessage().startswith("LISTEN connection lost")]
    assert len(listen) == 1, [r.getMessage() for r in records]
    assert "database unavailable" in listen[0].getMessage()
    assert [(r.levelname, r.exc_info) for r in records] == [("WARNING", None)] * len(records)
