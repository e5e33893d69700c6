"""Conflict findings (重复/可合并检查) and joint inspection proposals (联合检查)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from inspection_hub.db.base import Base


class Conflict(Base):
    """One finding of the detector: its kind, the inspections involved, and how it was resolved."""

    __tablename__ = "conflict"
    __table_args__ = (
        UniqueConstraint("enterprise_uscc", "finding_key"),
        Index("ix_conflict_id", "id"),
        Index("ix_conflict_status_id", "status", "id"),
        Index("ix_conflict_agency_codes", "agency_codes", postgresql_using="gin"),
        Index("ix_conflict_inspection_ids", "inspection_ids", postgresql_using="gin"),
    )

    enterprise_uscc: Mapped[str] = mapped_column(CHAR(18), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    finding_key: Mapped[str] = mapped_column(String(1000))
    inspection_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default="{}")
    agency_codes: Mapped[list[str]] = mapped_column(ARRAY(String(32)), server_default="{}")
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    lead_agency: Mapped[str | None] = mapped_column(String(32))
    policy_version: Mapped[str | None] = mapped_column(String(64))
    resolution: Mapped[str | None] = mapped_column(String(16))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[int | None] = mapped_column(BigInteger)
    resolved_by_name: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    version: Mapped[int] = mapped_column(Integer, server_default="1")


class JointProposal(Base):
    """A proposal to merge scheduled inspections of one enterprise into one joint visit."""

    __tablename__ = "joint_proposal"
    __table_args__ = (Index("ix_joint_proposal_id", "id"),)

    enterprise_uscc: Mapped[str] = mapped_column(CHAR(18), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), server_default="proposed")
    inspection_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    agency_codes: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    lead_agency: Mapped[str] = mapped_column(String(32))
    visit_date: Mapped[date] = mapped_column(Date)
    joint_inspection_id: Mapped[int | None] = mapped_column(BigInteger)
    proposed_by: Mapped[int | None] = mapped_column(BigInteger)
    proposed_by_name: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision_note: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class JointProposalConsent(Base):
    """One involved agency's consent to a joint inspection proposal."""

    __tablename__ = "joint_proposal_consent"
    __table_args__ = (
        ForeignKeyConstraint(
            ["enterprise_uscc", "proposal_id"],
            ["joint_proposal.enterprise_uscc", "joint_proposal.id"],
        ),
    )

    enterprise_uscc: Mapped[str] = mapped_column(CHAR(18), primary_key=True)
    proposal_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    agency_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    user_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    consented_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
