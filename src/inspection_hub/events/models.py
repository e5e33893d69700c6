"""The outbox table: one immutable row per state change, written in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from inspection_hub.db.base import Base


class Event(Base):
    """An event (事件) in the outbox."""

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    type_version: Mapped[int] = mapped_column(Integer)
    aggregate_type: Mapped[str] = mapped_column(String(32))
    aggregate_id: Mapped[str] = mapped_column(String(64))
    aggregate_seq: Mapped[int] = mapped_column(Integer)
    enterprise_uscc: Mapped[str | None] = mapped_column(String(18))
    agency_codes: Mapped[list[str]] = mapped_column(ARRAY(String(32)), server_default="{}")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    commit_order: Mapped[int] = mapped_column(BigInteger)


class ConsumerCursor(Base):
    """How far a consumer has read the outbox, in (commit_order, id) order."""

    __tablename__ = "consumer_cursor"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    position_order: Mapped[int] = mapped_column(BigInteger, server_default="0")
    position_id: Mapped[int] = mapped_column(BigInteger, server_default="0")
    handled_count: Mapped[int] = mapped_column(BigInteger, server_default="0")
    failed_count: Mapped[int] = mapped_column(BigInteger, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class HandlerRun(Base):
    """An event a consumer still owes: retrying after a failure, waiting behind one, or parked."""

    __tablename__ = "handler_run"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    consumer: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("event.id"))
    aggregate_type: Mapped[str] = mapped_column(String(32))
    aggregate_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
