"""Survey request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from inspection_hub.kit.schema import RequestModel, ResponseModel


class SurveyAnswer(RequestModel):
    """An enterprise's answer (by link, by its system, or told on the phone)."""

    occurred: Literal["yes", "no", "unsure"]
    visited_on: date | None = None
    inspector_count: int | None = Field(default=None, ge=0, le=100)
    certificates_shown: bool | None = None
    code_scanned: bool | None = None
    duration_minutes: int | None = Field(default=None, ge=0, le=24 * 60)
    burden: int | None = Field(default=None, ge=1, le=5)
    fees_or_favours_asked: bool | None = None
    items_outside_checklist: bool | None = None
    comments: str | None = Field(default=None, max_length=4000)


class PhoneVisitCreate(SurveyAnswer):
    """A phone visit: the answer fields plus whom the supervisor spoke to."""

    contact_name: str | None = Field(default=None, max_length=200)


class PhoneVisitRead(ResponseModel):
    """A recorded phone visit."""

    id: int
    survey_id: int
    answer: dict[str, Any]
    contact_name: str | None
    called_by_name: str
    discrepancies: list[str]
    created_at: datetime


class SurveyRead(ResponseModel):
    """A survey as supervisors see it: status, timing, the answer and contradictions."""

    id: int
    inspection_id: int
    enterprise_uscc: str
    agency_code: str
    inspection_kind: str
    status: str
    due_at: datetime
    sent_at: datetime | None
    expires_at: datetime | None
    reminded_at: datetime | None
    answered_at: datetime | None
    expired_at: datetime | None
    callback_status: str
    answer: dict[str, Any] | None
    answer_channel: str | None
    discrepancies: list[str]


class SurveyStatusRead(ResponseModel):
    """A survey as the inspected agency sees it: status only, never the answer."""

    id: int
    inspection_id: int
    agency_code: str
    status: str
    due_at: datetime
    sent_at: datetime | None
    expires_at: datetime | None


class SurveyDetail(SurveyRead):
    """One survey with its phone visits (supervisors)."""

    phone_visits: list[PhoneVisitRead]


class Question(BaseModel):
    """One question, Chinese first, with English."""

    field: str
    text_zh: str
    text_en: str
    answer_type: str


class RecordSummary(BaseModel):
    """What the platform's record says about the visit."""

    agency_code: str
    agency_name: str
    visit_date: date | None
    matters: list[str]
    inspector_count: int


class PublicSurvey(BaseModel):
    """What the enterprise sees behind its link."""

    survey_id: int
    status: str
    expires_at: datetime | None
    record: RecordSummary
    questions: list[Question]
    answer: dict[str, Any] | None = None


class AnswerReceipt(BaseModel):
    """The stored answer (also returned, unchanged, when the same answer is sent again)."""

    survey_id: int
    status: str
    answered_at: datetime
    replayed: bool
    message: str
