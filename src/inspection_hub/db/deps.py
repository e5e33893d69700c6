"""The request-scoped session: one transaction per request, committed by the dependency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


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
