"""Inspection tables (检查). Enterprise-keyed: the uscc leads every primary key."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from inspection_hub.db.base import Base


class Inspection(Base):
    """One visit (or off-site check) of one enterprise: planned, unplanned or joint."""

    __tablename__ = "inspection"
    __table_args__ = (
        Index("ix_inspection_id", "id"),
        Index("ix_inspection_enterprise_window", "enterprise_uscc", "window_start"),
        Index("ix_inspection_agency_year_status", "agency_code", "year", "status"),
        Index("ix_inspection_plan_id", "plan_id", postgresql_where=text("plan_id IS NOT NULL")),
        Index("ix_inspection_year_status", "year", "status"),
    )

    enterprise_uscc: Mapped[str] = mapped_column(
        CHAR(18), ForeignKey("enterprise.uscc"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # planned | unplanned | joint
    status: Mapped[str] = mapped_column(String(16))  # see inspections.state
    agency_code: Mapped[str] = mapped_column(ForeignKey("agency.code"))  # lead agency
    year: Mapped[int] = mapped_column(SmallInteger)
    window_start: Mapped[date] = mapped_column(Date)
    window_end: Mapped[date] = mapped_column(Date)
    offsite: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    plan_id: Mapped[int | None] = mapped_column(BigInteger)
    plan_item_id: Mapped[int | None] = mapped_column(BigInteger)
    draw_id: Mapped[int | None] = mapped_column(BigInteger)
    check_request_id: Mapped[int | None] = mapped_column(BigInteger)
    merged_into_id: Mapped[int | None] = mapped_column(BigInteger)
    basis: Mapped[str | None] = mapped_column(String(32))
    emergency: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    premises_id: Mapped[int | None] = mapped_column(BigInteger)
    visit_date: Mapped[date | None] = mapped_column(Date)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(32))
    outcome_text: Mapped[str | None] = mapped_column(Text)
    code: Mapped[str | None] = mapped_column(Text)
    code_scanned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class InspectionMatter(Base):
    """A checklist matter covered by an inspection (a joint one covers several agencies')."""

    __tablename__ = "inspection_matter"
    __table_args__ = (
        ForeignKeyConstraint(
            ["enterprise_uscc", "inspection_id"], ["inspection.enterprise_uscc", "inspection.id"]
        ),
    )

    enterprise_uscc: Mapped[str] = mapped_column(CHAR(18), primary_key=True)
    inspection_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    matter_code: Mapped[str] = mapped_column(ForeignKey("matter.code"), primary_key=True)
    agency_code: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(64))


def booked_day(window_start: date, window_end: date, visit_date: date | None) -> date | None:
    """The day inspectors are booked: the visit date, else a one-day window, else None."""
    if visit_date is not None:
        return visit_date
    return window_start if window_start == window_end else None


class InspectionInspector(Base):
    """An inspector assigned to (and, once completed, present at) an inspection."""

    __tablename__ = "inspection_inspector"
    __table_args__ = (
        ForeignKeyConstraint(
            ["enterprise_uscc", "inspection_id"], ["inspection.enterprise_uscc", "inspection.id"]
        ),
        Index("ix_inspection_inspector_inspector", "inspector_id"),
        Index(
            "ix_inspection_inspector_inspector_booked_day",
            "inspector_id",
            "booked_day",
            postgresql_where=text("booked_day IS NOT NULL"),
        ),
    )

    enterprise_uscc: Mapped[str] = mapped_column(CHAR(18), primary_key=True)
    inspection_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    inspector_id: Mapped[int] = mapped_column(ForeignKey("inspector.id"), primary_key=True)
    present: Mapped[bool | None] = mapped_column(Boolean)
    # The inspection's visit date, else its one-day window (see `booked_day`); set by writers,
    # kept in step by a trigger when the inspection's dates change (0005_conflicts).
    booked_day: Mapped[date | None] = mapped_column(Date)
