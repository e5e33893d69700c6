"""Agency, matter and inspector tables."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Identity, String, func
from sqlalchemy.orm import Mapped, mapped_column

from inspection_hub.db.base import Base


class Agency(Base):
    """An enforcement body (执法机关/行政检查主体)."""

    __tablename__ = "agency"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Matter(Base):
    """An item of an agency's published checklist (检查事项)."""

    __tablename__ = "matter"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    agency_code: Mapped[str] = mapped_column(ForeignKey("agency.code"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    category: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Inspector(Base):
    """A person holding an enforcement certificate (执法证)."""

    __tablename__ = "inspector"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    agency_code: Mapped[str] = mapped_column(ForeignKey("agency.code"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    certificate_no: Mapped[str] = mapped_column(String(64), unique=True)
    certificate_valid_until: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
