"""The statement pool behind db.deps.autocommit_connection (decision D25)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from inspection_hub.config import Settings
from inspection_hub.db.session import make_statement_pool
from inspection_hub.main import create_app
from tests.conftest import private_client

TABLE = "CREATE TEMP TABLE statement_pool_probe (k int PRIMARY KEY)"  # this connection's own


async def test_opens_nothing_until_used_and_stops_at_its_size(
    settings: Settings, database_url: str, sessionmaker: Any
) -> None:
    pool = await make_statement_pool(
        database_url, settings.model_copy(update={"db_statement_pool_size": 2})
    )
    try:
        assert pool.get_size() == 0  # no connection at start-up: replicas start fast
        async with pool.acquire() as a, pool.acquire() as b:
            assert a.get_server_pid() != b.get_server_pid()
            assert pool.get_size() == 2
            assert (
                await a.fetchval("SELECT current_setting('application_name')") == "inspection-hub"
            )
        assert pool.get_size() == 2  # kept for the next requests
    finally:
        await pool.close()


async def test_an_open_transaction_is_rolled_back_before_reuse(
    settings: Settings, database_url: str, sessionmaker: Any
) -> None:
    """The pool skips asyncpg's reset query, but never hands out a connection inside a
    transaction: what was not committed stays uncommitted."""
    pool = await make_statement_pool(
        database_url, settings.model_copy(update={"db_statement_pool_size": 1})
    )
    try:
        async with pool.acquire() as conn:
            await conn.execute(TABLE)
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO statement_pool_probe VALUES (1)")
            pid = conn.get_server_pid()
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == pid  # the same connection ...
            assert not conn.is_in_transaction()  # ... outside any transaction
            assert await conn.fetchval("SELECT count(*) FROM statement_pool_probe") == 0
    finally:
        await pool.close()


async def test_the_app_closes_it_at_shutdown(
    settings: Settings, database_url: str, sessionmaker: Any
) -> None:
    app = create_app(settings, database_url)
    async with app.router.lifespan_context(app):
        pool = app.state.statement_pool
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT 1") == 1
    assert pool.is_closing()
    with pytest.raises(asyncpg.InterfaceError):
        await pool.acquire()


async def test_a_request_gives_up_when_every_connection_stays_busy(
    settings: Settings,
    database_url: str,
    sessionmaker: Any,
    make_headers: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the pool used up, a request waits ACQUIRE_TIMEOUT_S, then fails with a problem
    instead of hanging; once a connection is free again the same request is answered."""
    import asyncio

    from inspection_hub.db import deps

    monkeypatch.setattr(deps, "ACQUIRE_TIMEOUT_S", 0.3)
    headers = await make_headers("supervisor")
    app = create_app(settings.model_copy(update={"db_statement_pool_size": 1}), database_url)
    async with private_client(app) as client:
        async with app.state.statement_pool.acquire():  # the only connection, held
            # without the timeout this would wait for ever: wait_for makes that a failure
            r = await asyncio.wait_for(client.get("/v1/inspections/1", headers=headers), 5)
            assert r.status_code == 500
            assert r.headers["content-type"] == "application/problem+json"
        r = await client.get("/v1/inspections/1", headers=headers)
        assert r.status_code == 404  # answered: no such inspection
