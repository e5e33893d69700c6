"""Periodic survey and verification jobs: dispatch, callbacks, reminders, expiry, trace checks."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.config import get_settings
from inspection_hub.kit.timeutil import local_today
from inspection_hub.scheduler.registry import job
from inspection_hub.surveys import service, trace
from inspection_hub.surveys.delivery import deliver_callbacks
from inspection_hub.webhooks.http import shared_client


@job("surveys.dispatch", seconds=60)
async def dispatch(session: AsyncSession) -> None:
    """Send due surveys: links for the SMS/letter gateway and queued callbacks."""
    settings = get_settings()
    await service.dispatch_due(
        session, public_base_url=settings.public_base_url, limit=settings.survey_dispatch_batch
    )


@job("surveys.callbacks", seconds=30)
async def callbacks(session: AsyncSession) -> None:
    """Deliver due survey callbacks (separate transactions around the HTTP calls)."""
    if session.bind is None:
        return
    factory = async_sessionmaker(session.bind, expire_on_commit=False)
    settings = get_settings()
    await deliver_callbacks(factory, shared_client(settings), settings)


@job("surveys.reminders", seconds=3600)
async def reminders(session: AsyncSession) -> None:
    """Remind, once, surveys still unanswered after `reminder_days`."""
    await service.remind_unanswered(session)


@job("surveys.expiry", seconds=3600)
async def expiry(session: AsyncSession) -> None:
    """Expire, once, surveys whose link has run out."""
    await service.expire_unanswered(session)


@job("verification.trace_checks", seconds=24 * 3600)
async def trace_checks(session: AsyncSession) -> None:
    """Nightly trace checks (平台留痕核查) of this year's completed inspections."""
    await trace.run_trace_checks(session, local_today().year)
