"""The relay: hands each committed event to every consumer subscribed to its type.

Progress is one cursor row per consumer, ``(position_order, position_id)`` over the outbox in
``(commit_order, id)`` order. A batch only reads events whose ``commit_order`` is below the
snapshot's xmin (``pg_snapshot_xmin(pg_current_snapshot())``): every transaction below it has
ended, and every transaction still running (or yet to commit) writes a larger ``commit_order``,
so a transaction that commits late lands *ahead* of the cursor and is never skipped. A rolled-back
transaction's events are never visible at all.

The cursor row is claimed with ``FOR UPDATE SKIP LOCKED`` (one replica works a consumer at a
time; the others take other consumers). Handlers run in the batch's transaction together with the
cursor move, so a crash re-delivers the batch (at-least-once; handlers are idempotent).

A failing handler's event goes to ``handler_run``: retried with exponential backoff (claimed with
``SKIP LOCKED``), parked after the consumer's ``max_attempts``. Later events of the same aggregate
wait behind it in ``handler_run`` so that per-aggregate order holds even across failures.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.events.registry import Consumer, EventEnvelope, consumers, discover_handlers

log = logging.getLogger(__name__)

_LOCK_CURSOR = text(
    "SELECT position_order, position_id FROM consumer_cursor WHERE consumer = :c "
    "FOR UPDATE SKIP LOCKED"
)
_CREATE_CURSOR = text(
    "INSERT INTO consumer_cursor (consumer) VALUES (:c) ON CONFLICT DO NOTHING "
    "RETURNING position_order, position_id"
)
_FETCH = text(
    """
    SELECT s.xmin, e.id, e.type, e.type_version, e.aggregate_type, e.aggregate_id,
           e.aggregate_seq, e.enterprise_uscc, e.agency_codes, e.payload, e.occurred_at,
           e.commit_order
    FROM (SELECT (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint AS xmin) AS s
    LEFT JOIN LATERAL (
        SELECT * FROM event
        WHERE (commit_order, id) > (:po, :pid) AND commit_order < s.xmin
          AND type = ANY(CAST(:types AS varchar[]))
        ORDER BY commit_order, id
        LIMIT :limit
    ) AS e ON true
    """
)
_BLOCKED = text(
    """
    SELECT DISTINCT aggregate_type, aggregate_id FROM handler_run
    WHERE consumer = :c AND aggregate_type = ANY(CAST(:types AS varchar[]))
      AND aggregate_id = ANY(CAST(:ids AS varchar[]))
    """
)
_DEFER = text(
    """
    INSERT INTO handler_run (consumer, event_id, aggregate_type, aggregate_id, status, attempts,
                             next_attempt_at, last_error)
    VALUES (:c, :event_id, :agg_type, :agg_id, :status, :attempts,
            now() + make_interval(secs => :delay), :error)
    ON CONFLICT (consumer, event_id) DO NOTHING
    """
)
_ADVANCE = text(
    """
    UPDATE consumer_cursor SET position_order = :po, position_id = :pid,
           handled_count = handled_count + :handled, failed_count = failed_count + :failed,
           updated_at = now()
    WHERE consumer = :c
    """
)
_DUE_RUNS = text(
    """
    SELECT hr.id AS run_id, hr.attempts, e.id, e.type, e.type_version, e.aggregate_type,
           e.aggregate_id, e.aggregate_seq, e.enterprise_uscc, e.agency_codes, e.payload,
           e.occurred_at
    FROM handler_run hr JOIN event e ON e.id = hr.event_id
    WHERE hr.consumer = :c AND hr.status = 'pending' AND hr.next_attempt_at <= now()
      AND NOT EXISTS (
          SELECT 1 FROM handler_run p
          WHERE p.consumer = hr.consumer AND p.aggregate_type = hr.aggregate_type
            AND p.aggregate_id = hr.aggregate_id AND p.id < hr.id)
    ORDER BY hr.id
    LIMIT :limit
    FOR UPDATE OF hr SKIP LOCKED
    """
)
_RUN_DONE = text("DELETE FROM handler_run WHERE id = :id")
_RUN_FAILED = text(
    """
    UPDATE handler_run SET attempts = :attempts, status = :status, last_error = :error,
           next_attempt_at = now() + make_interval(secs => :delay), updated_at = now()
    WHERE id = :id
    """
)
_COUNT = text(
    "UPDATE consumer_cursor SET handled_count = handled_count + :handled, "
    "failed_count = failed_count + :failed, updated_at = now() WHERE consumer = :c"
)
_PENDING = text(
    """
    SELECT EXISTS (
        SELECT 1 FROM event e
        LEFT JOIN consumer_cursor c ON c.consumer = :c
        WHERE e.type = ANY(CAST(:types AS varchar[]))
          AND (e.commit_order, e.id)
              > (COALESCE(c.position_order, 0), COALESCE(c.position_id, 0))
    ) OR EXISTS (
        SELECT 1 FROM handler_run hr
        WHERE hr.consumer = :c AND hr.status = 'pending' AND hr.next_attempt_at <= now()
          AND NOT EXISTS (
              SELECT 1 FROM handler_run p
              WHERE p.consumer = hr.consumer AND p.aggregate_type = hr.aggregate_type
                AND p.aggregate_id = hr.aggregate_id AND p.id < hr.id))
    """
)

MAX_ERROR_CHARS = 2000


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff of failed handler runs: base * 2^(attempt-1), capped."""

    base_seconds: float = 2.0
    max_seconds: float = 3600.0

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the given number of failed attempts."""
        return float(min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts - 1)))


def _envelope(row: Any) -> EventEnvelope:
    return EventEnvelope(
        id=row.id,
        type=row.type,
        type_version=row.type_version,
        aggregate_type=row.aggregate_type,
        aggregate_id=row.aggregate_id,
        aggregate_seq=row.aggregate_seq,
        enterprise_uscc=row.enterprise_uscc,
        agency_codes=list(row.agency_codes or []),
        payload=row.payload,
        occurred_at=row.occurred_at,
    )


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


class _HandlerFailed(Exception):
    """A handler raised inside an unisolated batch: the batch is redone with savepoints."""


async def _lock_cursor(session: AsyncSession, name: str) -> tuple[int, int] | None:
    row = (await session.execute(_LOCK_CURSOR, {"c": name})).first()
    if row is None:
        row = (await session.execute(_CREATE_CURSOR, {"c": name})).first()
        if row is None:  # exists, and another replica holds it
            return None
    return int(row.position_order), int(row.position_id)


async def process_batch(
    sessionmaker: async_sessionmaker[AsyncSession],
    consumer: Consumer,
    *,
    limit: int = 500,
    policy: RetryPolicy | None = None,
    isolate: bool = False,
) -> int | None:
    """Run one batch of new events through a consumer; None when another replica holds it.

    Returns the number of events consumed (handled, failed into handler_run or deferred).
    """
    policy = policy or RetryPolicy()
    types = sorted(consumer.event_types)
    try:
        async with sessionmaker() as session, session.begin():
            position = await _lock_cursor(session, consumer.name)
            if position is None:
                return None
            rows = (
                await session.execute(
                    _FETCH, {"po": position[0], "pid": position[1], "types": types, "limit": limit}
                )
            ).all()
            xmin = int(rows[0].xmin)
            events = [r for r in rows if r.id is not None]
            if not events:
                if xmin > position[0]:
                    # Everything of ours below xmin is done: skip over other consumers' events.
                    await session.execute(
                        _ADVANCE,
                        {"c": consumer.name, "po": xmin, "pid": 0, "handled": 0, "failed": 0},
                    )
                return 0
            blocked: set[tuple[str, str]] = {
                (b.aggregate_type, b.aggregate_id)
                for b in await session.execute(
                    _BLOCKED,
                    {
                        "c": consumer.name,
                        "types": sorted({e.aggregate_type for e in events}),
                        "ids": sorted({e.aggregate_id for e in events}),
                    },
                )
            }
            handled = failed = 0
            for row in events:
                key = (row.aggregate_type, row.aggregate_id)
                if key in blocked:
                    await _defer(session, consumer.name, row, "pending", 0, 0.0, None)
                    continue
                envelope = _envelope(row)
                if not isolate:
                    try:
                        await consumer.fn(session, envelope)
                    except Exception as exc:
                        raise _HandlerFailed() from exc
                    handled += 1
                    continue
                try:
                    async with session.begin_nested():
                        await consumer.fn(session, envelope)
                    handled += 1
                except Exception as exc:
                    failed += 1
                    blocked.add(key)
                    parked = consumer.max_attempts <= 1
                    log.warning(
                        "handler failed",
                        extra={"consumer": consumer.name, "event_id": row.id, "error": repr(exc)},
                    )
                    await _defer(
                        session,
                        consumer.name,
                        row,
                        "parked" if parked else "pending",
                        1,
                        policy.delay(1),
                        _error_text(exc),
                    )
            if len(events) < limit and xmin > events[-1].commit_order:
                new_position = (xmin, 0)
            else:
                new_position = (int(events[-1].commit_order), int(events[-1].id))
            await session.execute(
                _ADVANCE,
                {
                    "c": consumer.name,
                    "po": new_position[0],
                    "pid": new_position[1],
                    "handled": handled,
                    "failed": failed,
                },
            )
            return len(events)
    except _HandlerFailed:
        if isolate:  # pragma: no cover - isolated batches never raise it
            raise
        return await process_batch(sessionmaker, consumer, limit=limit, policy=policy, isolate=True)


async def _defer(
    session: AsyncSession,
    consumer: str,
    row: Any,
    status: str,
    attempts: int,
    delay: float,
    error: str | None,
) -> None:
    await session.execute(
        _DEFER,
        {
            "c": consumer,
            "event_id": row.id,
            "agg_type": row.aggregate_type,
            "agg_id": row.aggregate_id,
            "status": status,
            "attempts": attempts,
            "delay": delay,
            "error": error,
        },
    )


async def process_due_runs(
    sessionmaker: async_sessionmaker[AsyncSession],
    consumer: Consumer,
    *,
    limit: int = 100,
    policy: RetryPolicy | None = None,
) -> int:
    """Retry the consumer's due handler runs (oldest per aggregate first); return how many ran."""
    policy = policy or RetryPolicy()
    async with sessionmaker() as session, session.begin():
        rows = (await session.execute(_DUE_RUNS, {"c": consumer.name, "limit": limit})).all()
        handled = failed = 0
        failed_aggregates: set[tuple[str, str]] = set()
        for row in rows:
            key = (row.aggregate_type, row.aggregate_id)
            if key in failed_aggregates:
                continue  # keep order: a later run of this aggregate waits for the earlier one
            try:
                async with session.begin_nested():
                    await consumer.fn(session, _envelope(row))
            except Exception as exc:
                failed += 1
                failed_aggregates.add(key)
                attempts = int(row.attempts) + 1
                parked = attempts >= consumer.max_attempts
                await session.execute(
                    _RUN_FAILED,
                    {
                        "id": row.run_id,
                        "attempts": attempts,
                        "status": "parked" if parked else "pending",
                        "error": _error_text(exc),
                        "delay": 0.0 if parked else policy.delay(attempts),
                    },
                )
                continue
            handled += 1
            await session.execute(_RUN_DONE, {"id": row.run_id})
        if rows:
            await session.execute(
                _COUNT, {"c": consumer.name, "handled": handled, "failed": failed}
            )
        return len(rows)


def select_consumers(names: Iterable[str] | None = None) -> list[Consumer]:
    """The registered consumers (all, or the named ones), after discovering handlers."""
    registered = discover_handlers() or consumers()
    if names is None:
        return list(registered.values())
    wanted = list(names)
    missing = [n for n in wanted if n not in registered]
    if missing:
        raise KeyError(f"unknown consumers: {', '.join(missing)}")
    return [registered[n] for n in wanted]


async def run_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    selected: Sequence[Consumer],
    *,
    limit: int = 500,
    policy: RetryPolicy | None = None,
) -> int:
    """One pass over every consumer: new events, then due retries; return the work done."""
    done = 0
    for consumer in selected:
        if not consumer.event_types:
            continue
        while True:
            n = await process_batch(sessionmaker, consumer, limit=limit, policy=policy)
            if not n:
                break
            done += n
        done += await process_due_runs(sessionmaker, consumer, policy=policy)
    return done


async def _has_pending(sessionmaker: async_sessionmaker[AsyncSession], consumer: Consumer) -> bool:
    async with sessionmaker() as session:
        result = await session.execute(
            _PENDING, {"c": consumer.name, "types": sorted(consumer.event_types)}
        )
        return bool(result.scalar_one())


async def drain(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    consumers: Iterable[str] | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109 - a deadline for the whole drain, not one call
    retry_policy: RetryPolicy | None = None,
) -> int:
    """Handle every event pending now (and due retries) for the consumers; return the count.

    For tests and tools: runs the handlers in this task, deterministically. Waits while an
    open transaction holds the snapshot xmin back; raises TimeoutError after `timeout` seconds
    if work is still pending then. Retries not yet due (backoff) are left for later.
    """
    selected = select_consumers(consumers)
    deadline = time.monotonic() + timeout
    total = 0
    while True:
        total += await run_once(sessionmaker, selected, policy=retry_policy)
        pending = [
            c.name for c in selected if c.event_types and await _has_pending(sessionmaker, c)
        ]
        if not pending:
            return total
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"drain: events still pending for {', '.join(pending)} after {timeout} s "
                "(an open transaction may hold the snapshot xmin back)"
            )
        await asyncio.sleep(0.02)
