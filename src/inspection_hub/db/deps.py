"""The request-scoped session: one transaction per request, committed by the dependency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.util import greenlet_spawn

# asyncpg.Connection (asyncpg ships no type information): fetch/fetchrow/fetchval with $n.
DriverConnection = Any


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Open a session; commit when the route succeeds, roll back on any error."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# scope="function": commit BEFORE the response is sent. With FastAPI's default ("request") the
# exit code runs after the response has started, so a client could get 201 for a write whose
# commit then failed (found by tests/proof/test_crash.py terminating connections under load).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


@asynccontextmanager
async def autocommit_connection(request: Request) -> AsyncIterator[DriverConnection]:
    """A pooled driver connection outside any transaction: no session, no BEGIN/COMMIT.

    asyncpg runs each statement in autocommit, so a one-statement read costs one round trip and
    a one-statement write is its own transaction (all of it or nothing). The connection goes
    back to the pool unchanged (nothing was begun through SQLAlchemy, so its reset on return
    sends nothing); one found closed after an error is invalidated, so the pool does not hand it
    out again. Used by the hottest reads and the check-request submission and decisions; the
    rest keeps SessionDep.
    """
    engine: AsyncEngine = request.app.state.engine
    # The pool's connection itself, without the Connection/AsyncConnection wrappers (40 us of a
    # 1.2 ms read's CPU); nothing is begun through SQLAlchemy, so returning it sends nothing.
    # Check-in runs in SQLAlchemy's greenlet, where a reset needing the network could await.
    fairy = await engine.raw_connection()
    try:
        driver: DriverConnection = fairy.driver_connection
        try:
            yield driver
        except BaseException:
            if driver.is_closed():
                await greenlet_spawn(fairy.invalidate)
            raise
    finally:
        await greenlet_spawn(fairy.close)
