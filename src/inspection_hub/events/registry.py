"""The handler registry: event type -> handlers, declared next to each domain.

A domain declares handlers in `inspection_hub/<domain>/handlers.py`:

    @handler("conflict_detector", ev.INSPECTION_SCHEDULED, ev.CHECK_REQUEST_SUBMITTED)
    async def detect(session: AsyncSession, event: EventEnvelope) -> None: ...

A handler runs inside a transaction opened by the worker (it never commits), must be
idempotent (delivery is at-least-once), and sees the events of one aggregate in order.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.events.types import EventType


@dataclass(frozen=True, slots=True)
class EventEnvelope:
    """What a handler receives: the stored event."""

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


HandlerFn = Callable[[AsyncSession, EventEnvelope], Awaitable[None]]


@dataclass
class Consumer:
    """A named consumer: its handler and the event types it subscribes to."""

    name: str
    fn: HandlerFn
    event_types: set[str] = field(default_factory=set)
    max_attempts: int = 8


_CONSUMERS: dict[str, Consumer] = {}


def handler(
    consumer: str, *event_types: EventType, max_attempts: int = 8
) -> Callable[[HandlerFn], HandlerFn]:
    """Register `fn` as consumer `consumer` of the given event types."""

    def wrap(fn: HandlerFn) -> HandlerFn:
        if consumer in _CONSUMERS and _CONSUMERS[consumer].fn is not fn:
            raise ValueError(f"consumer {consumer} registered twice")
        _CONSUMERS[consumer] = Consumer(
            consumer, fn, {et.name for et in event_types}, max_attempts=max_attempts
        )
        return fn

    return wrap


def consumers() -> dict[str, Consumer]:
    """Every registered consumer (after `discover_handlers()`)."""
    return dict(_CONSUMERS)


def discover_handlers() -> dict[str, Consumer]:
    """Import every `inspection_hub.<domain>.handlers` module so its handlers register."""
    import inspection_hub

    for mod in pkgutil.iter_modules(inspection_hub.__path__):
        if not mod.ispkg:
            continue
        try:
            importlib.import_module(f"inspection_hub.{mod.name}.handlers")
        except ModuleNotFoundError as exc:
            if exc.name != f"inspection_hub.{mod.name}.handlers":
                raise
    return consumers()
