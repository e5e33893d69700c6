"""Engine and session factory; one transaction per request or job."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import Pool

from inspection_hub.config import Settings
from inspection_hub.db import types as _types  # noqa: F401  (CHAR binds as ::BPCHAR)


def resolve_database_url(settings: Settings, *, stop_on_exit: bool = True) -> str:
    """The configured URL, or the embedded server's (started on demand)."""
    if settings.database_url:
        return settings.database_url
    from inspection_hub.db.embedded import start_embedded

    return start_embedded(settings.data_dir, stop_on_exit=stop_on_exit)


def make_engine(url: str, settings: Settings) -> AsyncEngine:
    """An asyncpg engine with a pool sized to this machine."""
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        connect_args={"server_settings": {"application_name": "inspection-hub"}},
    )
    _ping_when_idle(engine.sync_engine.pool, settings.db_pool_ping_after_idle_s)
    return engine


def _ping_when_idle(pool: Pool, idle_s: float) -> None:
    # pool_pre_ping costs a round trip on every checkout, a third of a one-statement read.
    # Ping only connections idle for `idle_s`: a dropped connection is then found before use
    # after a quiet spell; under load it fails one request and the pool discards older ones.
    @event.listens_for(pool, "checkin")
    def _checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is not None and time.monotonic() - since < idle_s:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError("connection dropped while idle") from exc


async def make_statement_pool(url: str, settings: Settings) -> asyncpg.Pool:
    """The asyncpg pool behind `db.deps.autocommit_connection` (decision D25).

    The hottest routes run one statement in autocommit on a driver connection. Taking that
    connection from SQLAlchemy's pool costs two greenlet switches (check-out and check-in),
    a quarter of a one-statement read's CPU; asyncpg's own pool is plain asyncio. Connections
    open on demand (none at start-up) up to `db_statement_pool_size`, and a connection found
    closed (a restarted or terminated backend) is replaced at its next check-out. Only
    statements run here, never session state (SET, LISTEN, session advisory locks), so a
    connection goes back without asyncpg's reset round trip; an open transaction is still
    rolled back by asyncpg before the connection is reused.
    """
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=settings.db_statement_pool_size,
        reset=_statements_only,
        server_settings={"application_name": "inspection-hub"},
    )
    return pool


async def _statements_only(connection: Any) -> None:
    """No reset beyond asyncpg's own rollback of an open transaction (see make_statement_pool)."""
    return None


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run `callback` once, when the session next commits (a request rolled back never runs it).

    For effects that must not precede the commit and live only in this process (cache
    eviction); anything that leaves the process goes through the outbox instead.
    """
    event.listen(session.sync_session, "after_commit", lambda _session: callback(), once=True)


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session in one transaction: commits on success, rolls back on any error."""
    async with factory() as session, session.begin():
        yield session


async def driver_connection(session: AsyncSession) -> Any:
    """The session's asyncpg connection, inside the session's transaction (for COPY and friends).

    SQLAlchemy sends BEGIN lazily, on the first statement it executes itself; a statement sent
    straight to the driver before that would run in autocommit, outside the request's
    transaction (a COPY would survive a rollback, a temp table ON COMMIT DROP would vanish at
    once). One statement through the session first makes sure the transaction is open.
    """
    conn = await session.connection()
    await conn.exec_driver_sql("SELECT 1")
    return (await conn.get_raw_connection()).driver_connection
