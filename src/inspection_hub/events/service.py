"""The event feed (late-commit-safe cursor) and the supervisors' view of parked handler runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.audit.service import record
from inspection_hub.auth.principal import Principal
from inspection_hub.errors import Conflict, NotFound, ValidationFailed
from inspection_hub.events.outbox import NOTIFY_CHANNEL
from inspection_hub.events.types import all_types
from inspection_hub.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor

_FEED = text(
    """
    SELECT e.id, e.type, e.type_version, e.aggregate_type, e.aggregate_id, e.aggregate_seq,
           e.enterprise_uscc, e.agency_codes, e.payload, e.occurred_at, e.commit_order
    FROM event e
    WHERE (e.commit_order, e.id) > (:po, :pid)
      AND e.commit_order < (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint
      AND (CAST(:types AS varchar[]) IS NULL OR e.type = ANY(CAST(:types AS varchar[])))
      AND (CAST(:agency AS varchar) IS NULL OR CAST(:agency AS varchar) = ANY(e.agency_codes))
    ORDER BY e.commit_order, e.id
    LIMIT :limit
    """
)


def _bad(field: str, detail: str) -> ValidationFailed:
    return ValidationFailed(
        "The request is not valid.", errors=[{"field": field, "detail": detail}]
    )


async def feed(
    session: AsyncSession,
    actor: Principal,
    *,
    after: str | None,
    types: list[str] | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    """Events after the cursor, oldest first, that the caller may see; and the next cursor.

    The cursor is a position in (commit_order, id) order bounded by the snapshot xmin, so an
    event whose transaction commits late still appears after the cursor, never behind it.
    `next_cursor` is always the position to poll from next (the given one when nothing is new).
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise _bad("limit", f"must be between 1 and {MAX_LIMIT}")
    position = [0, 0]
    decoded = decode_cursor(after)
    if decoded is not None:
        if len(decoded) != 2 or not all(isinstance(v, int) for v in decoded):
            raise _bad("after", "malformed")
        position = decoded
    if types:
        known = {t.name for t in all_types()}
        unknown = sorted(set(types) - known)
        if unknown:
            raise _bad("types", f"unknown event types: {', '.join(unknown)}")
    agency = None if actor.sees_everything else (actor.agency_code or "")
    rows = (
        await session.execute(
            _FEED,
            {
                "po": position[0],
                "pid": position[1],
                "types": types or None,
                "agency": agency,
                "limit": limit,
            },
        )
    ).all()
    next_cursor = encode_cursor([int(rows[-1].commit_order), int(rows[-1].id)]) if rows else after
    return list(rows), next_cursor


_PARKED = text(
    """
    SELECT hr.id, hr.consumer, hr.event_id, e.type AS event_type, hr.aggregate_type,
           hr.aggregate_id, hr.status, hr.attempts, hr.next_attempt_at, hr.last_error,
           hr.created_at, hr.updated_at
    FROM handler_run hr JOIN event e ON e.id = hr.event_id
    WHERE (CAST(:status AS varchar) IS NULL OR hr.status = CAST(:status AS varchar))
      AND (CAST(:consumer AS varchar) IS NULL OR hr.consumer = CAST(:consumer AS varchar))
      AND hr.id > :after
    ORDER BY hr.id
    LIMIT :limit
    """
)


async def list_handler_runs(
    session: AsyncSession,
    *,
    status: str | None,
    consumer: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    """Handler runs owed (parked by default), oldest first."""
    limit = max(1, min(limit, MAX_LIMIT))
    decoded = decode_cursor(cursor)
    after = int(decoded[0]) if decoded else 0
    rows = (
        await session.execute(
            _PARKED,
            {"status": status, "consumer": consumer, "after": after, "limit": limit + 1},
        )
    ).all()
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return list(rows[:limit]), next_cursor


async def retry_parked(session: AsyncSession, actor: Principal, run_id: int) -> Any:
    """Re-queue a parked handler run now, with a fresh attempt budget."""
    row = (
        await session.execute(
            text("SELECT id, status, attempts FROM handler_run WHERE id = :id FOR UPDATE"),
            {"id": run_id},
        )
    ).first()
    if row is None:
        raise NotFound(f"Handler run {run_id} does not exist.")
    if row.status != "parked":
        raise Conflict(f"Handler run {run_id} is {row.status}, not parked.")
    await session.execute(
        text(
            "UPDATE handler_run SET status = 'pending', attempts = 0, next_attempt_at = now(), "
            "updated_at = now() WHERE id = :id"
        ),
        {"id": run_id},
    )
    await session.execute(text("SELECT pg_notify(:ch, '')"), {"ch": NOTIFY_CHANNEL})
    await record(
        session,
        actor,
        "handler_run.retry",
        "handler_run",
        run_id,
        before={"status": "parked", "attempts": row.attempts},
        after={"status": "pending", "attempts": 0},
    )
    rows, _ = await list_handler_runs(
        session, status=None, consumer=None, cursor=encode_cursor([run_id - 1]), limit=1
    )
    return rows[0]
