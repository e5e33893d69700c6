"""The outbox writer: events are rows written in the caller's transaction, never sent directly."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.events.types import EventType

NOTIFY_CHANNEL = "inspection_hub_events"

_INSERT = text(
    """
    INSERT INTO event (type, type_version, aggregate_type, aggregate_id, aggregate_seq,
                       enterprise_uscc, agency_codes, payload)
    VALUES (:type, :version, CAST(:agg_type AS varchar), CAST(:agg_id AS varchar),
            COALESCE((SELECT max(aggregate_seq) FROM event
                      WHERE aggregate_type = CAST(:agg_type AS varchar)
                        AND aggregate_id = CAST(:agg_id AS varchar)), 0) + 1,
            :uscc, CAST(:agencies AS varchar[]), CAST(:payload AS jsonb))
    RETURNING id
    """
)


async def emit(
    session: AsyncSession,
    event_type: EventType,
    aggregate_id: str | int,
    payload: dict[str, Any],
    *,
    enterprise_uscc: str | None = None,
    agency_codes: list[str] | None = None,
) -> int:
    """Write one event in the current transaction and wake the workers at commit."""
    import json

    result = await session.execute(
        _INSERT,
        {
            "type": event_type.name,
            "version": event_type.version,
            "agg_type": event_type.aggregate,
            "agg_id": str(aggregate_id),
            "uscc": enterprise_uscc,
            "agencies": sorted(set(agency_codes or [])),
            "payload": json.dumps(payload, ensure_ascii=False, default=str),
        },
    )
    event_id = int(result.scalar_one())
    # NOTIFY is transactional: delivered only if this transaction commits.
    await session.execute(text("SELECT pg_notify(:ch, '')"), {"ch": NOTIFY_CHANNEL})
    return event_id
