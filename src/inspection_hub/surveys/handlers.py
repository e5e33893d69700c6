"""Event handlers: the survey planner (consumer `survey_planner`) on `inspection.completed`."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.events import types as ev
from inspection_hub.events.registry import EventEnvelope, handler
from inspection_hub.surveys.service import plan_survey


@handler("survey_planner", ev.INSPECTION_COMPLETED)
async def plan_on_completion(session: AsyncSession, event: EventEnvelope) -> None:
    """Plan a follow-up survey for a completed inspection (idempotent: one per inspection)."""
    uscc = event.payload.get("enterprise") or event.enterprise_uscc
    inspection_id = event.payload.get("inspection_id") or event.aggregate_id
    if not uscc or inspection_id is None:
        return
    await plan_survey(session, str(uscc), int(inspection_id))
