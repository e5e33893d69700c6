"""The request-scoped session: one transaction per request, committed by the dependency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.db.availability import ConnectionLost, connection_closed

ACQUIRE_TIMEOUT_S = 30.0
"""How long a request waits for a statement-pool connection when all are in use."""

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
    a one-statement write is its own transaction (all of it or nothing). The connection comes
    from the statement pool (`db.session.make_statement_pool`, decision D25), not SQLAlchemy's:
    no greenlet switches and no wrappers. One found closed after an error is replaced at its
    next check-out. Used by the hottest reads and the check-request submission and decisions;
    the rest keeps SessionDep.
    """
    pool: asyncpg.Pool = request.app.state.statement_pool
    # As long as SQLAlchemy's pool waited (its pool_timeout) before failing the request. The
    # timer costs a third of a check-out (11 of ~40 us), so it is set only when there is no
    # idle connection: with one, the check-out takes it without waiting.
    timeout = None if pool.get_idle_size() else ACQUIRE_TIMEOUT_S
    async with pool.acquire(timeout=timeout) as connection:
        try:
            yield connection
        except (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError) as exc:
            if connection_closed(connection):  # the server ended it: an outage (D33)
                raise ConnectionLost(str(exc)) from exc
            raise
