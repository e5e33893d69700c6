"""The outbox writer: events are rows written in the caller's transaction, never sent directly."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.events.types import EventType

NOTIFY_CHANNEL = "inspection_hub_events"

_INSERT = text(
    """
    WITH prev AS (
        SELECT aggregate_seq, commit_order FROM event
        WHERE aggregate_type = :agg_type AND aggregate_id = :agg_id
        ORDER BY aggregate_seq DESC LIMIT 1
    )
    INSERT INTO event (type, type_version, aggregate_type, aggregate_id, aggregate_seq,
                       enterprise_uscc, agency_codes, payload, commit_order)
    VALUES (:type, :version, :agg_type, :agg_id,
            COALESCE((SELECT aggregate_seq FROM prev), 0) + 1,
            :uscc, CAST(:agencies AS varchar[]), CAST(:payload AS jsonb),
            GREATEST((pg_current_xact_id()::text)::bigint,
                     COALESCE((SELECT commit_order FROM prev), 0)))
    RETURNING id
    """
)
"""The insert: `commit_order` is this transaction's id, or the aggregate's previous event's
when that is larger, so readers bounded by the snapshot xmin never skip a late commit and see
one aggregate's events in order (see events/relay.py)."""


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
