"""The outbox writer: events are rows written in the caller's transaction, never sent directly."""

from __future__ import annotations

import json
import weakref
from functools import lru_cache
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.audit.service import INSERT_SQL, AuditEntry
from inspection_hub.events.types import EventType

NOTIFY_CHANNEL = "inspection_hub_events"

_INSERT_SQL = """
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
_INSERT = text(_INSERT_SQL)
"""The insert: `commit_order` is this transaction's id, or the aggregate's previous event's
when that is larger, so readers bounded by the snapshot xmin never skip a late commit and see
one aggregate's events in order (see events/relay.py)."""
# The event and its audit row in one statement (both data-modifying CTEs always run).
_INSERT_WITH_AUDIT = text(
    "WITH ev AS (" + _INSERT_SQL + "), au AS (" + INSERT_SQL + ") SELECT id FROM ev"
)


def _event_params(
    event_type: EventType,
    aggregate_id: str | int,
    payload: dict[str, Any],
    enterprise_uscc: str | None,
    agency_codes: list[str] | None,
) -> dict[str, Any]:
    return {
        "type": event_type.name,
        "version": event_type.version,
        "agg_type": event_type.aggregate,
        "agg_id": str(aggregate_id),
        "uscc": enterprise_uscc,
        "agencies": sorted(set(agency_codes or [])),
        "payload": json.dumps(payload, ensure_ascii=False, default=str),
    }


async def emit(
    session: AsyncSession,
    event_type: EventType,
    aggregate_id: str | int,
    payload: dict[str, Any],
    *,
    enterprise_uscc: str | None = None,
    agency_codes: list[str] | None = None,
    audit: AuditEntry | None = None,
) -> int:
    """Write one event in the current transaction; the workers wake at commit.

    The caller holds the aggregate's lock (its row `FOR UPDATE`, or the enterprise's advisory
    lock): the event's `aggregate_seq` is the last one plus one, so two transactions writing
    the same aggregate unlocked would take the same number and one would fail on
    `uq_event_aggregate_seq` (nothing is written twice, but that request fails).

    The wake-up is the `event_notify` trigger's NOTIFY (migration 0008), sent inside this
    statement: no round trip of its own. With ``audit``, the audit row is appended by the same
    statement (what `audit.service.record` would write, one round trip fewer).
    """
    params = _event_params(event_type, aggregate_id, payload, enterprise_uscc, agency_codes)
    if audit is None:
        result = await session.execute(_INSERT, params)
    else:
        result = await session.execute(_INSERT_WITH_AUDIT, params | audit.params())
    return int(result.scalar_one())


@lru_cache(maxsize=64)
def _with_event(write_sql: str) -> TextClause:
    return text(
        f"WITH w AS ({write_sql}), ev AS ({_INSERT_SQL}), au AS ({INSERT_SQL}) "
        "SELECT w.* FROM w, ev"
    )


_OWN_PARAMS = frozenset(
    {"type", "version", "agg_type", "agg_id", "uscc", "agencies", "payload"}
    | {"actor_id", "actor_name", "role", "action", "object_type", "object_id"}
    | {"before", "after", "request_id"}
)


async def write_with_event(
    session: AsyncSession,
    write_sql: str,
    write_params: dict[str, Any],
    event_type: EventType,
    aggregate_id: str | int,
    payload: dict[str, Any],
    *,
    audit: AuditEntry,
    enterprise_uscc: str | None = None,
    agency_codes: list[str] | None = None,
) -> list[Any]:
    """Run a data-modifying statement ``write_sql`` (with ``RETURNING``), its event and its audit
    row as one statement; return the write's rows.

    Run outside a transaction (an autocommit connection), this is a whole write in one round
    trip and one implicit transaction: all three rows or none. ``write_params`` must not reuse
    the event's or the audit row's parameter names.
    """
    clash = _OWN_PARAMS & write_params.keys()
    if clash:
        raise ValueError(f"parameter names reserved by the outbox and audit: {sorted(clash)}")
    params = _event_params(event_type, aggregate_id, payload, enterprise_uscc, agency_codes)
    result = await session.execute(_with_event(write_sql), write_params | params | audit.params())
    return list(result.mappings().all())


async def notify_once(session: AsyncSession, channel: str = NOTIFY_CHANNEL) -> None:
    """Wake the workers at commit: one NOTIFY per transaction and channel.

    Not needed after writing events (the `event_notify` trigger sends it); for other work the
    workers should look at now, such as a parked handler run put back in the queue.

    NOTIFY is transactional (delivered only if the transaction commits) and PostgreSQL folds
    duplicates anyway; sending it once saves a round trip per event on busy transactions.
    """
    transaction = session.get_transaction()
    key = f"_notified:{channel}"
    marker = session.info.get(key)
    if transaction is not None and marker is not None and marker() is transaction:
        return
    await session.execute(text("SELECT pg_notify(:ch, '')"), {"ch": channel})
    if transaction is not None:
        session.info[key] = weakref.ref(transaction)
