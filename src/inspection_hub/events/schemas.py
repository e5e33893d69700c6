"""Response bodies of the event routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from inspection_hub.kit.schema import ResponseModel


class EventRead(ResponseModel):
    """An event of the feed."""

    id: int
    type: str
    type_version: int
    aggregate_type: str
    aggregate_id: str
    aggregate_seq: int
    enterprise_uscc: str | None
    agency_codes: list[str]
    payload: dict[str, Any]
    occurred_at: datetime


class HandlerRunRead(ResponseModel):
    """A handler run that failed and is retrying or parked."""

    id: int
    consumer: str
    event_id: int
    event_type: str
    aggregate_type: str
    aggregate_id: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    updated_at: datetime
