"""Request and response bodies for agencies, matters and inspectors."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from inspection_hub.kit.schema import RequestModel, ResponseModel

CODE_PATTERN = r"^[A-Z][A-Z0-9_-]{1,31}$"


class AgencyCreate(RequestModel):
    """A new agency."""

    code: str = Field(pattern=CODE_PATTERN, examples=["SCJG"])
    name: str = Field(min_length=1, max_length=200, examples=["区市场监管局"])


class AgencyRead(ResponseModel):
    """An agency."""

    code: str
    name: str


class MatterCreate(RequestModel):
    """A checklist matter of the agency."""

    code: str = Field(pattern=r"^[A-Z0-9][A-Z0-9_.-]{1,63}$", examples=["SCJG-001"])
    name: str = Field(min_length=1, max_length=300)
    category: str = Field(min_length=1, max_length=64, examples=["food_safety"])


class MatterRead(ResponseModel):
    """A checklist matter."""

    code: str
    agency_code: str
    name: str
    category: str


class InspectorCreate(RequestModel):
    """A certified inspector of the agency."""

    name: str = Field(min_length=1, max_length=100)
    certificate_no: str = Field(min_length=4, max_length=64)
    certificate_valid_until: date


class InspectorRead(ResponseModel):
    """An inspector; `certificate_valid` is false once the certificate has lapsed."""

    id: int
    agency_code: str
    name: str
    certificate_no: str
    certificate_valid_until: date
    certificate_valid: bool
