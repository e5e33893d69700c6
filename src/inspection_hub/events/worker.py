"""The event worker of one process: LISTEN/NOTIFY wake-ups, the relay loop, webhook sending.

Woken by NOTIFY on a dedicated connection; polls every `event_poll_seconds` as well, because
a NOTIFY sent while nobody listened (restart, lost connection) is gone for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from inspection_hub.config import Settings
from inspection_hub.db.availability import (
    connection_closed,
    database_unavailable,
    log_pass_failure,
    outage_summary,
)
from inspection_hub.events.outbox import NOTIFY_CHANNEL
from inspection_hub.events.registry import Consumer
from inspection_hub.events.relay import RetryPolicy, run_once, select_consumers
from inspection_hub.webhooks.dispatcher import Dispatcher
from inspection_hub.webhooks.service import WEBHOOK_CHANNEL

log = logging.getLogger(__name__)


class EventWorker:
    """Runs the consumers' handlers and the webhook dispatcher until stopped."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        settings: Settings,
        *,
        consumers: list[Consumer] | None = None,
        deliver_webhooks: bool = True,
    ) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker
        self.http = http
        self.settings = settings
        self.consumers = consumers if consumers is not None else select_consumers()
        self.events_wake = asyncio.Event()
        self.webhooks_wake = asyncio.Event()
        self.dispatcher = (
            Dispatcher(sessionmaker, http, settings, self.webhooks_wake)
            if deliver_webhooks
            else None
        )
        self.policy = RetryPolicy(
            settings.handler_retry_base_seconds, settings.handler_retry_max_seconds
        )
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start listening, relaying and sending."""
        self._tasks = [
            asyncio.create_task(self._listen(), name="events-listen"),
            asyncio.create_task(self._relay(), name="events-relay"),
        ]
        if self.dispatcher is not None:
            self._tasks.append(asyncio.create_task(self.dispatcher.run(), name="webhooks"))

    async def stop(self) -> None:
        """Stop gracefully: the batch finishes; in-flight deliveries finish or are released."""
        self._stopping.set()
        self.events_wake.set()
        if self.dispatcher is not None:
            await self.dispatcher.stop(self.settings.shutdown_grace_seconds)
        for task in self._tasks:
            if task.get_name() == "events-listen":
                task.cancel()
        _done, pending = await asyncio.wait(
            self._tasks, timeout=self.settings.shutdown_grace_seconds
        )
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_notify(self, *args: Any) -> None:
        channel = args[2] if len(args) > 2 else NOTIFY_CHANNEL
        if channel == WEBHOOK_CHANNEL:
            self.webhooks_wake.set()
        else:
            self.events_wake.set()

    async def _listen(self) -> None:
        """Keep a dedicated LISTEN connection open, reconnecting after failures."""
        while not self._stopping.is_set():
            conn: AsyncConnection | None = None
            raw: Any = None
            try:
                conn = await self.engine.connect()
                raw = (await conn.get_raw_connection()).driver_connection
                await raw.add_listener(NOTIFY_CHANNEL, self._on_notify)
                await raw.add_listener(WEBHOOK_CHANNEL, self._on_notify)
                self.events_wake.set()  # catch up on anything sent while not listening
                while not raw.is_closed():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), 1.0)
                    if self._stopping.is_set():
                        return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A restart or an outage is one line (D33). That includes the connection the
                # pool handed out having been ended by the server since its last use: asyncpg
                # then fails LISTEN with an error of its own, "connection is closed" once it
                # has seen the end, or "cannot switch to state ..." (InternalClientError) while
                # it is still reading the server's last message. Nothing else uses this
                # connection, so a protocol-state error on it can only come from that.
                ended = raw is not None and (
                    connection_closed(raw) or isinstance(exc, asyncpg.InternalClientError)
                )
                if ended or database_unavailable(exc):
                    log.warning(
                        "LISTEN connection lost: database unavailable (%s); polling until it "
                        "is back",
                        outage_summary(exc),
                    )
                else:
                    log.warning("LISTEN connection lost; polling until it is back", exc_info=True)
                await asyncio.sleep(1.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.invalidate()
                        await conn.close()

    async def _relay(self) -> None:
        """Run the consumers whenever woken, and at least every poll interval."""
        delivers = any(c.name == "webhook_dispatcher" for c in self.consumers)
        while not self._stopping.is_set():
            self.events_wake.clear()
            try:
                done = await run_once(
                    self.sessionmaker,
                    self.consumers,
                    limit=self.settings.event_batch_size,
                    policy=self.policy,
                )
            except Exception as exc:
                log_pass_failure(log, "event relay pass failed", exc)
                done = 0
            if done and delivers:
                self.webhooks_wake.set()
            if done:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.events_wake.wait(), self.settings.event_poll_seconds)
