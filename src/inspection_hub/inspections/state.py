"""The inspection state machine as data: allowed transitions and the one guard."""

from __future__ import annotations

from enum import StrEnum

from inspection_hub.errors import Conflict


class InspectionStatus(StrEnum):
    """Where an inspection stands."""

    scheduled = "scheduled"
    in_progress = "in_progress"
    completed = "completed"
    cancelled = "cancelled"
    merged = "merged"


S = InspectionStatus
TRANSITIONS: dict[tuple[InspectionStatus, str], InspectionStatus] = {
    (S.scheduled, "start"): S.in_progress,
    (S.scheduled, "complete"): S.completed,
    (S.in_progress, "complete"): S.completed,
    (S.scheduled, "cancel"): S.cancelled,
    (S.scheduled, "merge"): S.merged,
}


def next_status(current: str, action: str) -> InspectionStatus:
    """The status after `action`, or a 409 problem naming the illegal transition."""
    target = TRANSITIONS.get((InspectionStatus(current), action))
    if target is None:
        allowed = sorted(a for (s, a) in TRANSITIONS if s == current)
        raise Conflict(
            f"An inspection that is {current} cannot {action}"
            + (f" (allowed: {', '.join(allowed)})." if allowed else " (it is final)."),
            current_status=current,
        )
    return target
