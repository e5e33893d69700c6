"""Enterprise and risk-class history tables (enterprise-keyed: distributable by uscc)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CHAR, Date, DateTime, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from inspection_hub.db.base import Base


class Enterprise(Base):
    """An inspected firm."""

    __tablename__ = "enterprise"

    uscc: Mapped[str] = mapped_column(CHAR(18), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    district_code: Mapped[str] = mapped_column(String(12), index=True)
    industry_code: Mapped[str] = mapped_column(String(8))
    risk_class: Mapped[str] = mapped_column(CHAR(1))
    established_on: Mapped[date | None] = mapped_column(Date)
    address: Mapped[str | None] = mapped_column(Text)
    callback_url: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class EnterpriseRiskClass(Base):
    """The risk class an enterprise held from a date on (caps use the class at the time)."""

    __tablename__ = "enterprise_risk_class"

    enterprise_uscc: Mapped[str] = mapped_column(CHAR(18), primary_key=True)
    valid_from: Mapped[date] = mapped_column(Date, primary_key=True)
    risk_class: Mapped[str] = mapped_column(CHAR(1))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
