"""Check request bodies: requests forbid extra fields (status, approver, version never come in)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field
from pydantic_core import to_json

from inspection_hub.kit.schema import RequestModel, ResponseModel

Basis = Literal["complaint", "referral", "tip_off", "assigned_by_superior", "incident", "other"]
EMERGENCY_BASES = frozenset({"incident", "complaint"})
MIN_OTHER_REASON = 20


class Window(RequestModel):
    """The proposed window of the check (inclusive dates)."""

    start: date
    end: date


class CheckRequestCreate(RequestModel):
    """A request for an unplanned check (filed by a scheduler of the agency)."""

    agency: str = Field(pattern=r"^[A-Z][A-Z0-9_-]{1,31}$", examples=["SCJG"])
    enterprise: str = Field(min_length=1, max_length=32, examples=["91320404MA1XXXXXXX"])
    matters: list[str] = Field(min_length=1, max_length=50, examples=[["SCJG-001"]])
    basis: Basis
    basis_ref: str | None = Field(default=None, max_length=200, examples=["投诉编号 2026-118"])
    reason: str = Field(default="", max_length=4000)
    window: Window
    emergency: bool = False


class DecisionBody(RequestModel):
    """An approver's decision note (required to reject)."""

    comment: str | None = Field(default=None, max_length=4000)


class WindowRead(ResponseModel):
    """Inclusive dates."""

    start: date
    end: date


class PersonRead(ResponseModel):
    """A user, by id and name."""

    id: int
    name: str


class CheckRequestRead(ResponseModel):
    """A check request, with its pre-check when read one by one."""

    id: int
    status: str
    version: int
    agency: str
    enterprise: str
    matters: list[str]
    basis: str
    basis_ref: str | None
    reason: str
    window: WindowRead
    emergency: bool
    requester: PersonRead
    submitted_at: datetime
    decision_due_at: datetime
    escalated_at: datetime | None
    expires_at: datetime
    decided_by: PersonRead | None
    decided_at: datetime | None
    decision_comment: str | None
    inspection_id: int | None
    policy_version: str
    precheck: dict[str, Any] | None = None


def _read_fields(row: Any, precheck: dict[str, Any] | None) -> dict[str, Any]:
    """A check_request row (a mapping from Core SQL) as `CheckRequestRead`'s fields, in order."""
    decided_by = row["decided_by"]
    return {
        "id": row["id"],
        "status": row["status"],
        "version": row["version"],
        "agency": row["agency_code"],
        "enterprise": row["enterprise_uscc"],
        "matters": list(row["matters"]),
        "basis": row["basis"],
        "basis_ref": row["basis_ref"],
        "reason": row["reason"],
        "window": {"start": row["window_start"], "end": row["window_end"]},
        "emergency": row["emergency"],
        "requester": {"id": row["requester_id"], "name": row["requester_name"]},
        "submitted_at": row["submitted_at"],
        "decision_due_at": row["decision_due_at"],
        "escalated_at": row["escalated_at"],
        "expires_at": row["expires_at"],
        "decided_by": (
            {"id": decided_by, "name": row["decided_by_name"] or ""}
            if decided_by is not None
            else None
        ),
        "decided_at": row["decided_at"],
        "decision_comment": row["decision_comment"],
        "inspection_id": row["inspection_id"],
        "policy_version": row["policy_version"],
        "precheck": precheck,
    }


def read_of(row: Any, precheck: dict[str, Any] | None = None) -> CheckRequestRead:
    """Present a check_request row (a mapping from Core SQL)."""
    return CheckRequestRead.model_validate(_read_fields(row, precheck))


def read_json(row: Any, precheck: dict[str, Any] | None = None) -> bytes:
    """`read_of(row, precheck).model_dump_json()`, without building the model.

    The hot routes (submission, pre-check read, decisions) answer with one request whose row
    comes from the database or from the statement that just wrote it, so the model's validation
    would only check it again: a tenth of a submission's instructions, with the pre-check. The
    same fields, encoded by the same pydantic-core encoder; tests/approvals/test_answer_json.py
    compares the two on every shape of row (the model's field order against the dict's).
    """
    return to_json(_read_fields(row, precheck))
