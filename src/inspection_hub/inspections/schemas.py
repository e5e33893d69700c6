"""Request and response bodies for inspections, inspection codes and public disclosure."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import Field

from inspection_hub.kit.schema import RequestModel, ResponseModel


class Outcome(StrEnum):
    """How a completed inspection ended."""

    no_issue = "no_issue"
    rectification_ordered = "rectification_ordered"
    penalized = "penalized"
    not_penalized_first_minor = "not_penalized_first_minor"
    referred = "referred"


class InspectionComplete(RequestModel):
    """Completion: the visit date, who was there and the outcome."""

    visit_date: date
    inspectors_present: list[int] = Field(min_length=1, max_length=50)
    outcome: Outcome
    outcome_text: str = Field(default="", max_length=10000)


class InspectionCancel(RequestModel):
    """Why the inspection is cancelled."""

    reason: str = Field(default="", max_length=2000)


class MatterRef(ResponseModel):
    """A matter covered by an inspection."""

    code: str
    agency_code: str
    category: str
    name: str | None = None


class InspectorRef(ResponseModel):
    """An inspector assigned to (or present at) an inspection."""

    id: int
    name: str
    agency_code: str
    certificate_no: str
    certificate_valid_until: date
    present: bool | None = None


class InspectionRead(ResponseModel):
    """An inspection with its matters, inspectors and code."""

    id: int
    enterprise_uscc: str
    kind: str
    status: str
    agency_code: str
    agencies: list[str]
    year: int
    window_start: date
    window_end: date
    offsite: bool
    plan_id: int | None
    plan_item_id: int | None
    draw_id: int | None
    check_request_id: int | None
    merged_into_id: int | None
    basis: str | None
    emergency: bool
    visit_date: date | None
    started_at: datetime | None
    completed_at: datetime | None
    outcome: str | None
    outcome_text: str | None
    code: str | None
    code_url: str | None
    code_scanned_at: datetime | None
    version: int
    matters: list[MatterRef]
    inspectors: list[InspectorRef]


class EnterpriseInspections(ResponseModel):
    """An enterprise's inspections in a year with the yearly count and its cap."""

    uscc: str
    year: int
    risk_class: str
    count: int
    cap: int
    policy_version: str
    items: list[InspectionRead]


class CodeInspector(ResponseModel):
    """An inspector as shown at the door: name and certificate, nothing private."""

    name: str
    agency_code: str
    certificate_no: str
    certificate_valid_until: date


class CodeLookup(ResponseModel):
    """What a valid inspection code shows the enterprise (检查码核验)."""

    valid: bool = True
    message: str
    inspection_id: int
    status: str
    kind: str
    enterprise_uscc: str
    enterprise_name: str
    agency_code: str
    agency_name: str
    agencies: list[str]
    matters: list[MatterRef]
    window_start: date
    window_end: date
    expires_on: date
    inspectors: list[CodeInspector]
    code_scanned_at: datetime | None
    started_at: datetime | None


class ScanResult(ResponseModel):
    """The enterprise's scan at the door."""

    inspection_id: int
    first_scan: bool
    status: str
    code_scanned_at: datetime
    started_at: datetime | None


class PublicInspection(ResponseModel):
    """A completed inspection of a published plan (一公开): no personal data."""

    inspection_id: int
    plan_id: int
    enterprise_uscc: str
    enterprise_name: str
    agency_code: str
    agency_name: str
    agencies: list[str]
    kind: str
    matters: list[str]
    visit_date: date | None
    outcome: str | None
