"""Survey tables (跟踪核验): surveys, phone visits, the sampling seed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from inspection_hub.db.base import Base


class Survey(Base):
    """A follow-up verification of one completed inspection: pending → sent → answered|expired."""

    __tablename__ = "survey"
    __table_args__ = (
        UniqueConstraint("enterprise_uscc", "inspection_id"),
        ForeignKeyConstraint(
            ["enterprise_uscc", "inspection_id"], ["inspection.enterprise_uscc", "inspection.id"]
        ),
        ForeignKeyConstraint(["agency_code"], ["agency.code"]),
        Index("ix_survey_id", "id"),
        Index("ix_survey_inspection_id", "inspection_id"),
        Index("ix_survey_agency_year", "agency_code", "year", "status"),
    )

    enterprise_uscc: Mapped[str] = mapped_column(CHAR(18), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    inspection_id: Mapped[int] = mapped_column(BigInteger)
    agency_code: Mapped[str] = mapped_column(String(32))
    year: Mapped[int] = mapped_column(SmallInteger)
    inspection_kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    token_hash: Mapped[str | None] = mapped_column(CHAR(64))
    link_event_id: Mapped[int | None] = mapped_column(BigInteger)
    callback_url: Mapped[str | None] = mapped_column(Text)
    callback_status: Mapped[str] = mapped_column(String(16), server_default="none")
    callback_attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    callback_next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    callback_last_error: Mapped[str | None] = mapped_column(Text)
    callback_delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    answer_channel: Mapped[str | None] = mapped_column(String(16))
    discrepancies: Mapped[list[str]] = mapped_column(ARRAY(String(32)), server_default="{}")
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SurveySamplingSeed(Base):
    """The per-year secret seed for reproducible sampling of planned inspections."""

    __tablename__ = "survey_sampling_seed"

    year: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    seed: Mapped[str] = mapped_column(CHAR(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SurveyPhoneVisit(Base):
    """A phone visit (电话走访) a supervisor recorded against a survey."""

    __tablename__ = "survey_phone_visit"
    __table_args__ = (
        ForeignKeyConstraint(
            ["enterprise_uscc", "survey_id"], ["survey.enterprise_uscc", "survey.id"]
        ),
        Index("ix_survey_phone_visit_survey", "enterprise_uscc", "survey_id"),
    )

    enterprise_uscc: Mapped[str] = mapped_column(CHAR(18), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    survey_id: Mapped[int] = mapped_column(BigInteger)
    answer: Mapped[dict[str, Any]] = mapped_column(JSONB)
    contact_name: Mapped[str | None] = mapped_column(String(200))
    called_by: Mapped[int | None] = mapped_column(BigInteger)
    called_by_name: Mapped[str] = mapped_column(String(200))
    discrepancies: Mapped[list[str]] = mapped_column(ARRAY(String(32)), server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
