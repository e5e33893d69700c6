"""Periodic jobs of check requests: decision deadlines, emergencies, idempotency-key purge."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.approvals.service import run_deadlines
from inspection_hub.config import get_settings
from inspection_hub.kit import idempotency
from inspection_hub.kit.timeutil import utcnow
from inspection_hub.scheduler.registry import job

log = logging.getLogger(__name__)


@job("approvals.deadlines", seconds=60)
async def deadlines(session: AsyncSession) -> None:
    """Escalate overdue requests to supervisors, expire them later, flag late emergencies."""
    report = await run_deadlines(session, utcnow(), batch=get_settings().check_request_sweep_batch)
    if report.escalated or report.expired or report.emergency_unapproved:
        log.info(
            "check request deadlines: escalated=%s expired=%s emergency_unapproved=%s",
            report.escalated,
            report.expired,
            report.emergency_unapproved,
        )


@job("idempotency.purge", seconds=3600)
async def purge_idempotency_keys(session: AsyncSession) -> None:
    """Forget Idempotency-Key answers older than their lifetime (24 h)."""
    await idempotency.purge_expired(session, ttl_hours=get_settings().idempotency_ttl_hours)
