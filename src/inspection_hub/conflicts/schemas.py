"""Conflict, joint inspection and burden bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from inspection_hub.kit.schema import RequestModel, ResponseModel

ConflictKind = Literal[
    "repeat",
    "mergeable",
    "cap_exceeded",
    "inspector_conflict",
    "exempt",
    "emergency_unapproved",
    "survey_discrepancy",
    "unregistered_visit",
    "trace_check_failed",
]
ConflictStatus = Literal["open", "resolved"]
Resolution = Literal["merged", "justified", "cancelled", "dismissed"]


class ConflictRead(ResponseModel):
    """A finding (重复/可合并检查) and its resolution."""

    id: int
    enterprise_uscc: str
    kind: ConflictKind
    status: ConflictStatus
    inspection_ids: list[int]
    agency_codes: list[str]
    lead_agency: str | None
    detail: dict[str, Any]
    policy_version: str | None
    resolution: Resolution | None
    resolution_note: str | None
    resolved_by_name: str | None
    resolved_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class ConflictResolve(RequestModel):
    """How a finding is resolved; ``justified`` needs a note, ``cancelled`` an inspection."""

    resolution: Resolution
    note: str | None = Field(default=None, max_length=2000)
    inspection_id: int | None = None


class JointInspectionCreate(RequestModel):
    """Merge scheduled inspections of one enterprise into one joint visit (进一次门、查多项事)."""

    inspections: list[int] = Field(min_length=2, max_length=20)
    lead_agency: str = Field(min_length=1, max_length=32)
    date: date


class JointDecision(RequestModel):
    """An optional note with a supervisor's accept or a rejection."""

    note: str | None = Field(default=None, max_length=2000)


class JointConsentRead(ResponseModel):
    """One agency's consent."""

    agency: str
    by: str
    role: str
    at: str | None


class JointProposalRead(ResponseModel):
    """A joint inspection proposal: proposed → accepted | rejected."""

    id: int
    enterprise: str
    status: Literal["proposed", "accepted", "rejected"]
    inspection_ids: list[int]
    agencies: list[str]
    lead_agency: str
    date: str
    joint_inspection_id: int | None
    consents: list[JointConsentRead]
    decision_note: str | None
    version: int


class AgencyBurden(ResponseModel):
    """One agency's inspections of the enterprise in the year."""

    agency: str
    completed: int
    scheduled: int
    total: int


class BurdenRead(ResponseModel):
    """The enterprise's yearly cap ledger (all agencies together; a joint visit counts once)."""

    enterprise: str
    year: int
    risk_class: str | None
    risk_class_on: str
    policy_version: str
    cap: int | None
    completed: int
    scheduled: int
    counted: int
    remaining: int | None
    over_cap: bool
    by_agency: list[AgencyBurden]
