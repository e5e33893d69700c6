"""Periodic job: forget page sessions that have expired."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.config import get_settings
from inspection_hub.scheduler.registry import job
from inspection_hub.web.sessions import purge_expired


@job("web.sessions.purge", seconds=900)
async def purge_sessions(session: AsyncSession) -> None:
    """Delete sessions past their idle or absolute expiry."""
    await purge_expired(session, get_settings())
