"""The plan state machine as data: allowed transitions and the one guard."""

from __future__ import annotations

from enum import StrEnum

from inspection_hub.errors import Conflict


class PlanStatus(StrEnum):
    """Where a plan stands."""

    draft = "draft"
    submitted = "submitted"
    drawn = "drawn"
    published = "published"
    withdrawn = "withdrawn"


S = PlanStatus
TRANSITIONS: dict[tuple[PlanStatus, str], PlanStatus] = {
    (S.draft, "submit"): S.submitted,
    (S.draft, "withdraw"): S.withdrawn,
    (S.submitted, "draw"): S.drawn,
    (S.drawn, "publish"): S.published,
}


def next_status(current: str, action: str) -> PlanStatus:
    """The status after `action`, or a 409 problem naming the illegal transition."""
    target = TRANSITIONS.get((PlanStatus(current), action))
    if target is None:
        allowed = sorted(a for (s, a) in TRANSITIONS if s == current)
        raise Conflict(
            f"计划当前状态为 {current}，不能执行 {action} / "
            f"A plan that is {current} cannot {action}"
            + (f" (allowed: {', '.join(allowed)})." if allowed else " (it is final)."),
            current_status=current,
        )
    return target
