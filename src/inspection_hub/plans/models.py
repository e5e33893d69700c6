"""Plan, plan item and draw tables (年度抽查计划、随机抽取记录)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from inspection_hub.db.base import Base


class Plan(Base):
    """An annual inspection plan of one agency, or of several (部门联合抽查)."""

    __tablename__ = "plan"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    year: Mapped[int] = mapped_column(SmallInteger)
    title: Mapped[str] = mapped_column(String(300))
    agency_code: Mapped[str] = mapped_column(ForeignKey("agency.code"))
    agencies: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    drawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class PlanItem(Base):
    """One item of a plan: matters, population filter, sampling, window; its secret seed."""

    __tablename__ = "plan_item"
    __table_args__ = (UniqueConstraint("plan_id", "position"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id"))
    position: Mapped[int] = mapped_column(SmallInteger)
    matters: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    districts: Mapped[list[str]] = mapped_column(ARRAY(String(12)), server_default="{}")
    industry_prefixes: Mapped[list[str]] = mapped_column(ARRAY(String(8)), server_default="{}")
    risk_classes: Mapped[list[str]] = mapped_column(ARRAY(String(1)), server_default="{}")
    sampling: Mapped[dict[str, Any]] = mapped_column(JSONB)
    window_start: Mapped[date] = mapped_column(Date)
    window_end: Mapped[date] = mapped_column(Date)
    inspectors_per_check: Mapped[int] = mapped_column(SmallInteger)
    offsite: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # Secret until the draw: never put in a response while the plan is not drawn.
    seed: Mapped[str | None] = mapped_column(String(64))
    seed_commitment: Mapped[str | None] = mapped_column(String(64))


class Draw(Base):
    """A completed draw of one plan item, with everything needed to re-run it."""

    __tablename__ = "draw"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id"), index=True)
    plan_item_id: Mapped[int] = mapped_column(ForeignKey("plan_item.id"), unique=True)
    algorithm: Mapped[str] = mapped_column(String(32))
    seed: Mapped[str] = mapped_column(String(64))
    seed_commitment: Mapped[str] = mapped_column(String(64))
    population_digest: Mapped[str] = mapped_column(String(64))
    population_size: Mapped[dict[str, int]] = mapped_column(JSONB)
    population: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    sampling: Mapped[dict[str, Any]] = mapped_column(JSONB)
    window_start: Mapped[date] = mapped_column(Date)
    window_end: Mapped[date] = mapped_column(Date)
    inspectors_per_check: Mapped[int] = mapped_column(SmallInteger)
    workload_cap: Mapped[int | None] = mapped_column(Integer)
    agencies: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    roster: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    recusals: Mapped[dict[str, list[str]]] = mapped_column(JSONB)
    exemptions: Mapped[dict[str, Any]] = mapped_column(JSONB)
    policy_version: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any]] = mapped_column(JSONB, deferred=True)
    selected_count: Mapped[int] = mapped_column(Integer)
    drawn_by: Mapped[int | None] = mapped_column(BigInteger)
    drawn_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
