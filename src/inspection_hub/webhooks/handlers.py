"""The `webhook_dispatcher` consumer: fans each event out into one delivery per subscription."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.events.registry import EventEnvelope, handler
from inspection_hub.events.types import all_types
from inspection_hub.webhooks.service import enqueue_deliveries


@handler("webhook_dispatcher", *all_types(), max_attempts=20)
async def fan_out(session: AsyncSession, event: EventEnvelope) -> None:
    """Create the deliveries of this event (idempotent: one row per subscription and event)."""
    await enqueue_deliveries(session, event)
