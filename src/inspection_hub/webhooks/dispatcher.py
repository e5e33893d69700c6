"""Sends pending webhook deliveries: signed (Standard Webhooks), retried, dead-lettered.

A delivery is claimed by setting a lease (``claimed_until``) on rows picked with
``FOR UPDATE SKIP LOCKED``, committed before any HTTP is sent, so any number of worker replicas
can send at once and a worker that dies (even SIGKILL) only delays its claimed deliveries until
the lease runs out. The HTTP request runs outside any transaction; its outcome is written after.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from inspection_hub.config import Settings
from inspection_hub.webhooks.signing import decrypt_secret
from inspection_hub.webhooks.ssrf import UnsafeURL, guarded_post

log = logging.getLogger(__name__)

WEBHOOK_ATTEMPTS = Counter(
    "inspection_hub_webhook_attempts_total",
    "Webhook delivery attempts by outcome (this process).",
    ["outcome"],
)

MAX_EXCERPT = 500
MAX_RETRY_AFTER_SECONDS = 86400.0

_CLAIM = text(
    """
    UPDATE webhook_delivery d
    SET claimed_until = now() + make_interval(secs => :lease), updated_at = now()
    FROM webhook_subscription s, event e
    WHERE d.id IN (
        SELECT id FROM webhook_delivery
        WHERE status = 'pending' AND next_attempt_at <= now()
          AND (claimed_until IS NULL OR claimed_until < now())
        ORDER BY next_attempt_at, id
        LIMIT :n
        FOR UPDATE SKIP LOCKED)
      AND s.id = d.subscription_id AND e.id = d.event_id
    RETURNING d.id, d.webhook_id, d.attempts, s.id AS subscription_id, s.url,
              s.secret_encrypted, s.status AS subscription_status, e.id AS event_id, e.type,
              e.payload, e.occurred_at
    """
)
_SUCCEEDED = text(
    """
    UPDATE webhook_delivery SET status = 'delivered', attempts = attempts + 1,
           delivered_at = now(), last_attempt_at = now(), last_status_code = :code,
           last_response_excerpt = :excerpt, last_error = NULL, claimed_until = NULL,
           updated_at = now()
    WHERE id = :id AND status = 'pending'
    """
)
_FAILED = text(
    """
    UPDATE webhook_delivery SET status = :status, attempts = attempts + 1,
           next_attempt_at = now() + make_interval(secs => :delay), last_attempt_at = now(),
           last_status_code = :code, last_response_excerpt = :excerpt, last_error = :error,
           claimed_until = NULL, updated_at = now()
    WHERE id = :id AND status = 'pending'
    """
)
_DEAD_SUBSCRIPTION = text(
    """
    UPDATE webhook_delivery SET status = 'failed', last_error = :error, claimed_until = NULL,
           updated_at = now()
    WHERE id = :id AND status = 'pending'
    """
)
_DISABLE = text(
    """
    UPDATE webhook_subscription SET status = 'disabled', disabled_reason = :reason,
           updated_at = now()
    WHERE id = :id AND status = 'active'
    """
)
_RELEASE = text(
    "UPDATE webhook_delivery SET claimed_until = NULL WHERE id = ANY(CAST(:ids AS bigint[])) "
    "AND status = 'pending'"
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to."""

    kind: str  # delivered | http_error | gone | timeout | network_error | refused | skipped
    status_code: int | None = None
    excerpt: str | None = None
    error: str | None = None
    retry_after: float | None = None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delta, 0.0), MAX_RETRY_AFTER_SECONDS)


def retry_delay(
    settings: Settings, attempts_so_far: int, retry_after: float | None
) -> float | None:
    """Seconds before the next attempt after `attempts_so_far` failures, None to dead-letter."""
    schedule = settings.webhook_retry_schedule_seconds
    if attempts_so_far > len(schedule):
        return None
    if retry_after is not None:
        return retry_after
    base = float(schedule[attempts_so_far - 1])
    jitter = settings.webhook_retry_jitter
    return base * (1 + random.uniform(-jitter, jitter))


def build_body(row: Any) -> str:
    """The JSON body: {"type", "timestamp", "data", "event_id"}."""
    occurred: datetime = row.occurred_at
    return json.dumps(
        {
            "type": row.type,
            "timestamp": occurred.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "data": row.payload,
            "event_id": row.event_id,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def sign_headers(secret: str, webhook_id: str, body: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt."""
    signature = Webhook(secret).sign(webhook_id, at, body)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": "inspection-hub-webhooks/1",
    }


async def attempt(http: httpx.AsyncClient, settings: Settings, row: Any) -> Outcome:
    """Send one delivery once; never raises for network or HTTP trouble."""
    if row.subscription_status != "active":
        return Outcome("skipped", error=f"subscription {row.subscription_status}")
    body = build_body(row)
    secret = decrypt_secret(row.secret_encrypted, settings.session_secret)
    headers = sign_headers(secret, row.webhook_id, body, datetime.now(UTC))
    try:
        response = await guarded_post(
            http,
            row.url,
            content=body.encode(),
            headers=headers,
            timeout=settings.webhook_timeout_seconds,
            allow_private=settings.allow_private_callback_urls,
            allow_http=settings.env != "production",
        )
    except UnsafeURL as exc:
        return Outcome("refused", error=f"refused by the SSRF guard: {exc.reason}")
    except httpx.TimeoutException as exc:
        return Outcome("timeout", error=f"timeout: {exc}"[:MAX_EXCERPT])
    except httpx.HTTPError as exc:
        return Outcome("network_error", error=f"{type(exc).__name__}: {exc}"[:MAX_EXCERPT])
    excerpt = response.content[:MAX_EXCERPT].decode("utf-8", errors="replace")
    code = response.status_code
    if 200 <= code < 300:
        return Outcome("delivered", code, excerpt)
    if code == 410:
        return Outcome("gone", code, excerpt, error="410 Gone: subscription disabled")
    return Outcome(
        "http_error",
        code,
        excerpt,
        error=f"HTTP {code}",
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


async def record_outcome(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, row: Any, out: Outcome
) -> None:
    """Write an attempt's outcome: delivered, retry later, dead letter, or disable on 410."""
    WEBHOOK_ATTEMPTS.labels(out.kind).inc()
    async with sessionmaker() as session, session.begin():
        if out.kind == "delivered":
            await session.execute(
                _SUCCEEDED, {"id": row.id, "code": out.status_code, "excerpt": out.excerpt}
            )
            return
        if out.kind == "skipped":
            await session.execute(_DEAD_SUBSCRIPTION, {"id": row.id, "error": out.error})
            return
        if out.kind == "gone":
            await session.execute(
                _DISABLE, {"id": row.subscription_id, "reason": "the receiver answered 410 Gone"}
            )
            delay: float | None = None
        else:
            delay = retry_delay(settings, int(row.attempts) + 1, out.retry_after)
        await session.execute(
            _FAILED,
            {
                "id": row.id,
                "status": "failed" if delay is None else "pending",
                "delay": delay or 0.0,
                "code": out.status_code,
                "excerpt": out.excerpt,
                "error": out.error,
            },
        )


async def claim(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, n: int
) -> Sequence[Any]:
    """Claim up to `n` due deliveries (lease `webhook_claim_seconds`)."""
    async with sessionmaker() as session, session.begin():
        result = await session.execute(_CLAIM, {"n": n, "lease": settings.webhook_claim_seconds})
        return result.all()


async def release(sessionmaker: async_sessionmaker[AsyncSession], ids: Sequence[int]) -> None:
    """Give claimed deliveries back to the queue (graceful shutdown)."""
    if not ids:
        return
    async with sessionmaker() as session, session.begin():
        await session.execute(_RELEASE, {"ids": list(ids)})


async def deliver_one(
    sessionmaker: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    settings: Settings,
    row: Any,
) -> Outcome:
    """Attempt a claimed delivery and record the outcome."""
    out = await attempt(http, settings, row)
    await record_outcome(sessionmaker, settings, row, out)
    return out


async def deliver_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    settings: Settings,
    *,
    limit: int = 1000,
) -> int:
    """Send every delivery due now, concurrently (bounded); return how many were attempted."""
    rows = await claim(sessionmaker, settings, limit)
    semaphore = asyncio.Semaphore(settings.webhook_concurrency)

    async def one(row: Any) -> None:
        async with semaphore:
            await deliver_one(sessionmaker, http, settings, row)

    await asyncio.gather(*(one(r) for r in rows))
    return len(rows)


class Dispatcher:
    """The delivery loop of one worker process: at most `webhook_concurrency` in flight."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        settings: Settings,
        wake: asyncio.Event,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.http = http
        self.settings = settings
        self.wake = wake
        self.in_flight: dict[asyncio.Task[None], int] = {}
        self._stopping = asyncio.Event()
        self._slot_free = asyncio.Event()

    async def run(self) -> None:
        """Claim and send until stopped."""
        limit = self.settings.webhook_concurrency
        while not self._stopping.is_set():
            free = limit - len(self.in_flight)
            rows: Sequence[Any] = []
            if free > 0:
                try:
                    rows = await claim(self.sessionmaker, self.settings, free)
                except Exception:
                    log.exception("claiming webhook deliveries failed")
            for row in rows:
                task = asyncio.create_task(self._send(row))
                self.in_flight[task] = int(row.id)
            if rows and len(rows) == free:
                self._slot_free.clear()
                await self._wait(self._slot_free, self.settings.event_poll_seconds)
                continue
            if not rows:
                self.wake.clear()
                await self._wait(self.wake, self.settings.event_poll_seconds)

    async def _wait(self, event: asyncio.Event, seconds: float) -> None:
        stop = asyncio.ensure_future(self._stopping.wait())
        other = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({stop, other}, timeout=seconds, return_when="FIRST_COMPLETED")
        finally:
            stop.cancel()
            other.cancel()

    async def _send(self, row: Any) -> None:
        try:
            await deliver_one(self.sessionmaker, self.http, self.settings, row)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook delivery %s failed unexpectedly", row.id)
        finally:
            self.in_flight.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
            self._slot_free.set()

    async def stop(self, grace: float) -> None:
        """Stop claiming; let in-flight deliveries finish for `grace` s, then release them."""
        self._stopping.set()
        tasks = list(self.in_flight)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            ids = [self.in_flight[t] for t in pending if t in self.in_flight]
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await release(self.sessionmaker, ids)
