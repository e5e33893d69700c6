"""Engine and session factory; one transaction per request or job."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

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
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": "inspection-hub"}},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


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
