"""The request-scoped session: one transaction per request, committed by the dependency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

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
async def read_connection(request: Request) -> AsyncIterator[DriverConnection]:
    """A pooled driver connection for a one-statement read: no session, no transaction.

    asyncpg runs each statement in autocommit, so a read costs one round trip and none of the
    session's bookkeeping (BEGIN, COMMIT, identity map). The connection goes back to the pool
    unchanged (nothing was begun through SQLAlchemy, so its reset on return sends nothing).
    Used by the hottest read routes; everything that writes keeps SessionDep.
    """
    engine: AsyncEngine = request.app.state.engine
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        yield raw.driver_connection
