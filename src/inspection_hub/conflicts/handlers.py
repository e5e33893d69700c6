"""Event handlers of the conflict detector (consumer ``conflict_detector``).

Every handler runs in the worker's transaction and is idempotent: findings are keyed by
(enterprise, kind, inspection ids), and detection per enterprise is serialised by an advisory
lock, so replays and concurrent deliveries record each finding once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.conflicts import service
from inspection_hub.events import types as ev
from inspection_hub.events.registry import EventEnvelope, handler
from inspection_hub.policy import PolicyBook

CONSUMER = "conflict_detector"


def _ints(value: Any) -> set[int]:
    out: set[int] = set()
    if isinstance(value, list):
        for item in value:
            if isinstance(item, int):
                out.add(item)
            elif isinstance(item, dict):
                for key in ("inspection_id", "id"):
                    if isinstance(item.get(key), int):
                        out.add(int(item[key]))
                        break
    return out


def _usccs(value: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(value, str):
        out.add(value)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                out.add(item)
            elif isinstance(item, dict):
                for key in ("uscc", "enterprise", "enterprise_uscc"):
                    if isinstance(item.get(key), str):
                        out.add(item[key])
                        break
    return out


async def targets_of(session: AsyncSession, event: EventEnvelope) -> dict[str, set[int] | None]:
    """Which enterprises (and which of their inspections; None = all live ones) to re-check."""
    payload = event.payload
    targets: dict[str, set[int] | None] = {}
    ids = _ints(payload.get("inspection_ids")) | _ints(payload.get("inspections"))
    if isinstance(payload.get("inspection_id"), int):
        ids.add(int(payload["inspection_id"]))
    if event.aggregate_type == "inspection" and event.aggregate_id.isdigit():
        ids.add(int(event.aggregate_id))
    for uscc, found in (await service.enterprises_of_inspections(session, ids)).items():
        targets[uscc] = found
    if event.type in (ev.PLAN_SUBMITTED.name, ev.DRAW_COMPLETED.name):
        draw_id = payload.get("draw_id")
        if event.type == ev.DRAW_COMPLETED.name and not isinstance(draw_id, int):
            draw_id = int(event.aggregate_id) if event.aggregate_id.isdigit() else None
        plan_id = payload.get("plan_id")
        if event.type == ev.PLAN_SUBMITTED.name and not isinstance(plan_id, int):
            plan_id = int(event.aggregate_id) if event.aggregate_id.isdigit() else None
        batch = await service.inspections_of_batch(
            session,
            draw_id=draw_id if isinstance(draw_id, int) else None,
            plan_id=plan_id if isinstance(plan_id, int) and not isinstance(draw_id, int) else None,
        )
        for uscc, found in batch.items():
            known = targets.get(uscc)
            targets[uscc] = found | known if known is not None else found
        named = _usccs(payload.get("enterprises")) | _usccs(payload.get("enterprise"))
        for uscc in named:
            targets.setdefault(uscc, None)
    if not targets and event.enterprise_uscc and event.type != ev.CHECK_REQUEST_SUBMITTED.name:
        targets[event.enterprise_uscc.strip()] = None
    return targets


_INSPECTION_EVENTS = frozenset(
    {ev.INSPECTION_SCHEDULED.name, ev.INSPECTION_RESCHEDULED.name, ev.INSPECTION_COMPLETED.name}
)


async def _detect_own_inspections(
    session: AsyncSession, event: EventEnvelope, book: PolicyBook
) -> bool:
    """The common case in one round trip before the writes: an inspection event naming its
    enterprise, whose inspections all belong to it. Lock and load that enterprise directly
    (no lookup of the inspections' enterprises first); False when the event is not of that
    shape or an inspection is not among the enterprise's recent ones (the general path then).
    """
    if event.type not in _INSPECTION_EVENTS or not event.enterprise_uscc:
        return False
    payload = event.payload
    ids = _ints(payload.get("inspection_ids")) | _ints(payload.get("inspections"))
    if isinstance(payload.get("inspection_id"), int):
        ids.add(int(payload["inspection_id"]))
    if event.aggregate_type == "inspection" and event.aggregate_id.isdigit():
        ids.add(int(event.aggregate_id))
    if not ids:
        return False
    uscc = event.enterprise_uscc.strip()
    loaded = await service.load_locked(session, uscc, ids)
    if loaded is None or not ids <= {f.id for f in loaded.history}:
        return False
    await service.detect_loaded(session, loaded, ids, book, service.DetectionResult())
    return True


@handler(
    CONSUMER,
    ev.PLAN_SUBMITTED,
    ev.DRAW_COMPLETED,
    ev.CHECK_REQUEST_SUBMITTED,
    ev.INSPECTION_SCHEDULED,
    ev.INSPECTION_RESCHEDULED,
    ev.INSPECTION_COMPLETED,
    ev.INSPECTION_CANCELLED,
    ev.INSPECTION_MERGED,
)
async def detect(session: AsyncSession, event: EventEnvelope) -> None:
    """Re-check the enterprises an event touches and record new findings.

    ``check_request.submitted``: a pending request is not an inspection yet; its conflicts are
    answered synchronously by the pre-check and nothing is stored (the inspection created on
    approval is checked on its own ``inspection.scheduled``). Cancelled or merged inspections
    close the open findings that no longer stand.
    """
    if event.type == ev.CHECK_REQUEST_SUBMITTED.name:
        return
    book = service.policy_book()
    if event.type in (ev.INSPECTION_CANCELLED.name, ev.INSPECTION_MERGED.name):
        targets = await targets_of(session, event)
        for uscc in sorted(targets):
            for inspection_id in sorted(targets[uscc] or ()):
                reason = "cancelled" if event.type == ev.INSPECTION_CANCELLED.name else "merged"
                await service.settle_inspection_gone(session, uscc, inspection_id, book, reason)
        return
    if await _detect_own_inspections(session, event, book):
        return
    targets = await targets_of(session, event)
    # Sorted: two handlers locking several enterprises always lock in one order (no deadlock).
    for uscc in sorted(targets):
        await service.detect_for_enterprise(session, uscc, book, targets[uscc])
