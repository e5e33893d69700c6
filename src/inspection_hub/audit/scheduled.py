"""Periodic job: seal pending audit rows into the hash chain."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.audit.service import seal
from inspection_hub.scheduler.registry import job


@job("audit.seal", seconds=2)
async def seal_pending(session: AsyncSession) -> None:
    """Chain the audit rows written since the last run."""
    await seal(session)
