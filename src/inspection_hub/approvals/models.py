"""Check request (unplanned check, 机关负责人审批) and idempotency-key tables."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from inspection_hub.db.base import Base


class CheckRequest(Base):
    """A request for an unplanned check of one enterprise, awaiting the agency head's decision."""

    __tablename__ = "check_request"
    __table_args__ = (
        Index("ix_check_request_id", "id"),
        Index("ix_check_request_agency_status", "agency_code", "status", "created_at", "id"),
        Index("ix_check_request_status_created", "status", "created_at", "id"),
    )

    enterprise_uscc: Mapped[str] = mapped_column(
        CHAR(18), ForeignKey("enterprise.uscc"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    agency_code: Mapped[str] = mapped_column(String(32), ForeignKey("agency.code"))
    requester_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("user_account.id"))
    requester_name: Mapped[str] = mapped_column(String(200))
    matters: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    basis: Mapped[str] = mapped_column(String(32))
    basis_ref: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, server_default="")
    window_start: Mapped[date] = mapped_column(Date)
    window_end: Mapped[date] = mapped_column(Date)
    emergency: Mapped[bool] = mapped_column(Boolean, server_default="false")
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    policy_version: Mapped[str] = mapped_column(String(64))
    submitted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    decision_due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    emergency_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    emergency_flagged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("user_account.id"))
    decided_by_name: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision_comment: Mapped[str | None] = mapped_column(Text)
    inspection_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IdempotencyKey(Base):
    """The first answer to a POST-create under an Idempotency-Key, per token (kept 24 h)."""

    __tablename__ = "idempotency_key"
    __table_args__ = (Index("ix_idempotency_key_created_at", "created_at"),)

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(CHAR(64))
    status: Mapped[str] = mapped_column(String(16), server_default="in_flight")
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
