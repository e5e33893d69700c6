"""Engine and session factory; one transaction per request or job."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
        pool_pre_ping=settings.db_pool_pre_ping,
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
