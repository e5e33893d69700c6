"""Request and response bodies of the webhook routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from inspection_hub.kit.schema import RequestModel, ResponseModel


class SubscriptionCreate(RequestModel):
    """A new webhook subscription."""

    url: str = Field(max_length=2048)
    event_types: list[str] = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=500)


class SubscriptionRead(ResponseModel):
    """A webhook subscription (never its secret)."""

    id: int
    url: str
    event_types: list[str]
    description: str
    agency_code: str | None
    status: str
    disabled_reason: str | None
    created_at: datetime


class SubscriptionCreated(SubscriptionRead):
    """The created subscription with its signing secret, shown this once only."""

    secret: str


class DeliveryRead(ResponseModel):
    """A webhook delivery and its last attempt."""

    id: int
    subscription_id: int
    event_id: int
    webhook_id: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_response_excerpt: str | None
    last_error: str | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
