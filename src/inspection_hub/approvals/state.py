"""The check request state machine as data: allowed transitions and the one guard."""

from __future__ import annotations

from enum import StrEnum

from inspection_hub.errors import Conflict


class CheckRequestStatus(StrEnum):
    """Where a check request stands; every status but `pending` is final."""

    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    withdrawn = "withdrawn"
    expired = "expired"


class Action(StrEnum):
    """What can happen to a pending request."""

    approve = "approve"
    reject = "reject"
    withdraw = "withdraw"
    expire = "expire"


S = CheckRequestStatus
TRANSITIONS: dict[tuple[CheckRequestStatus, Action], CheckRequestStatus] = {
    (S.pending, Action.approve): S.approved,
    (S.pending, Action.reject): S.rejected,
    (S.pending, Action.withdraw): S.withdrawn,
    (S.pending, Action.expire): S.expired,
}
FINAL_STATUSES = frozenset(s for s in CheckRequestStatus if s is not S.pending)
PAST_TENSE = {
    Action.approve: "approved",
    Action.reject: "rejected",
    Action.withdraw: "withdrawn",
    Action.expire: "expired",
}


def next_status(current: str, action: Action) -> CheckRequestStatus:
    """The status after `action`, or a 409 problem naming the illegal transition."""
    target = TRANSITIONS.get((CheckRequestStatus(current), action))
    if target is None:
        raise Conflict(
            f"A check request that is {current} cannot be {PAST_TENSE[action]} (it is final).",
            current_status=current,
        )
    return target
