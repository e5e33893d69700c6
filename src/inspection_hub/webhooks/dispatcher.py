"""Sends pending webhook deliveries: signed (Standard Webhooks), retried, dead-lettered.

A delivery is claimed by setting a lease (``claimed_until``) on rows picked with
``FOR UPDATE SKIP LOCKED``, committed before any HTTP is sent, so any number of worker replicas
can send at once and a worker that dies (even SIGKILL) only delays its claimed deliveries until
the lease runs out. The HTTP request runs outside any transaction; its outcome is written after.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import json
import logging
import random
from collections import deque
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
from inspection_hub.db.availability import log_pass_failure
from inspection_hub.webhooks.signing import decrypt_secret
from inspection_hub.webhooks.ssrf import TargetCache, UnsafeURL, guarded_post

log = logging.getLogger(__name__)

WEBHOOK_ATTEMPTS = Counter(
    "inspection_hub_webhook_attempts_total",
    "Webhook delivery attempts by outcome (this process).",
    ["outcome"],
)

MAX_EXCERPT = 500
MAX_RETRY_AFTER_SECONDS = 86400.0
# The worker loop claims ahead this many rounds of `webhook_concurrency` deliveries.
PREFETCH_ROUNDS = 4
# Checked subscription URLs, kept a few seconds (addresses stay pinned; see `TargetCache`).
TARGETS = TargetCache(ttl=5.0)

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
_RECORD = text(
    """
    UPDATE webhook_delivery d SET
        status = x.status,
        attempts = CASE WHEN x.counted THEN d.attempts + 1 ELSE d.attempts END,
        delivered_at = CASE WHEN x.status = 'delivered' THEN now() ELSE d.delivered_at END,
        next_attempt_at = CASE WHEN x.counted AND x.status <> 'delivered'
            THEN now() + make_interval(secs => x.delay) ELSE d.next_attempt_at END,
        last_attempt_at = CASE WHEN x.counted THEN now() ELSE d.last_attempt_at END,
        last_status_code = CASE WHEN x.counted THEN x.code ELSE d.last_status_code END,
        last_response_excerpt = CASE WHEN x.counted THEN x.excerpt
            ELSE d.last_response_excerpt END,
        last_error = x.error, claimed_until = NULL, updated_at = now()
    FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:counted AS boolean[]),
                CAST(:delays AS float8[]), CAST(:codes AS integer[]), CAST(:excerpts AS text[]),
                CAST(:errors AS text[]))
         AS x(id, status, counted, delay, code, excerpt, error)
    WHERE d.id = x.id
      -- Inside CASE so that PostgreSQL cannot answer it from the pending rows' partial index:
      -- the rows are found by key, one probe each (decision D31).
      AND CASE WHEN d.status = 'pending' THEN true ELSE false END
    """
)
_DISABLE = text(
    """
    UPDATE webhook_subscription SET status = 'disabled', disabled_reason = :reason,
           updated_at = now()
    WHERE id = ANY(CAST(:ids AS bigint[])) AND status = 'active'
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


@functools.lru_cache(maxsize=4096)
def _signer(secret: str) -> Webhook:
    """A signer per secret (decoding the `whsec_` secret once, not once per delivery)."""
    return Webhook(secret)


def sign_headers(secret: str, webhook_id: str, body: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt."""
    signature = _signer(secret).sign(webhook_id, at, body)
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
            cache=TARGETS,
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


async def record_outcomes(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    items: Sequence[tuple[Any, Outcome]],
) -> None:
    """Write attempts' outcomes in one transaction: delivered, retry later, dead letter, 410."""
    if not items:
        return
    ids: list[int] = []
    statuses: list[str] = []
    counted: list[bool] = []
    delays: list[float] = []
    codes: list[int | None] = []
    excerpts: list[str | None] = []
    errors: list[str | None] = []
    gone: set[int] = set()
    for row, out in items:
        WEBHOOK_ATTEMPTS.labels(out.kind).inc()
        ids.append(int(row.id))
        errors.append(out.error)
        if out.kind == "skipped":  # the subscription is gone: dead-lettered, not an attempt
            statuses.append("failed")
            counted.append(False)
            delays.append(0.0)
            codes.append(None)
            excerpts.append(None)
            continue
        counted.append(True)
        codes.append(out.status_code)
        excerpts.append(out.excerpt)
        if out.kind == "delivered":
            statuses.append("delivered")
            delays.append(0.0)
            continue
        if out.kind == "gone":
            gone.add(int(row.subscription_id))
            delay: float | None = None
        else:
            delay = retry_delay(settings, int(row.attempts) + 1, out.retry_after)
        statuses.append("failed" if delay is None else "pending")
        delays.append(delay or 0.0)
    async with sessionmaker() as session, session.begin():
        if gone:
            await session.execute(
                _DISABLE, {"ids": sorted(gone), "reason": "the receiver answered 410 Gone"}
            )
        await session.execute(
            _RECORD,
            {
                "ids": ids,
                "statuses": statuses,
                "counted": counted,
                "delays": delays,
                "codes": codes,
                "excerpts": excerpts,
                "errors": errors,
            },
        )


async def record_outcome(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, row: Any, out: Outcome
) -> None:
    """Write one attempt's outcome (see `record_outcomes`)."""
    await record_outcomes(sessionmaker, settings, [(row, out)])


class OutcomeRecorder:
    """Group commit of outcomes: those that arrive while a write runs go in the next one.

    `record` returns once its outcome is committed, so a delivery counts as done (and its
    lease is released) only then; a worker killed before that re-sends it after the lease.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        max_batch: int = 500,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.max_batch = max_batch
        self._waiting: list[tuple[Any, Outcome, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, row: Any, out: Outcome) -> None:
        """Queue an outcome for the next write and wait until it is committed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((row, out, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        await asyncio.shield(done)

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                try:
                    await record_outcomes(
                        self.sessionmaker, self.settings, [(r, o) for r, o, _ in batch]
                    )
                except Exception as exc:
                    for _, _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    for _, _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._writer = None


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
    recorder: OutcomeRecorder | None = None,
) -> Outcome:
    """Attempt a claimed delivery and record the outcome (grouped with others by `recorder`)."""
    out = await attempt(http, settings, row)
    if recorder is None:
        await record_outcome(sessionmaker, settings, row, out)
    else:
        await recorder.record(row, out)
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
    if not rows:
        return 0
    recorder = OutcomeRecorder(sessionmaker, settings)
    semaphore = asyncio.Semaphore(settings.webhook_concurrency)

    async def one(row: Any) -> None:
        async with semaphore:
            out = await attempt(http, settings, row)
        await recorder.record(row, out)  # the next send need not wait for this write

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
        self.recorder = OutcomeRecorder(sessionmaker, settings)
        self.backlog: deque[Any] = deque()
        self.sending = 0
        self.in_flight: dict[asyncio.Task[None], int] = {}
        self._stopping = asyncio.Event()
        self._slot_free = asyncio.Event()

    async def run(self) -> None:
        """Claim and send until stopped.

        Claims ahead (up to `PREFETCH_ROUNDS` × the concurrency, refilled when at most one
        round is left) so that a claim query is paid per batch, not per freed slot; claimed
        rows not yet sent keep their lease and are released on a graceful stop.
        """
        limit = max(1, self.settings.webhook_concurrency)
        prefetch = PREFETCH_ROUNDS * limit
        try:
            while not self._stopping.is_set():
                drained = False
                if len(self.backlog) <= limit:
                    want = prefetch - len(self.backlog)
                    rows: Sequence[Any] = []
                    try:
                        rows = await claim(self.sessionmaker, self.settings, want)
                    except Exception as exc:
                        log_pass_failure(log, "claiming webhook deliveries failed", exc)
                    self.backlog.extend(rows)
                    drained = len(rows) < want
                    if self._stopping.is_set():
                        break
                while self.backlog and self.sending < limit:
                    row = self.backlog.popleft()
                    self.sending += 1
                    task = asyncio.create_task(self._send(row))
                    self.in_flight[task] = int(row.id)
                if self.backlog or (not drained and self.sending >= limit):
                    self._slot_free.clear()
                    await self._wait(self._slot_free, self.settings.event_poll_seconds)
                    continue
                if drained:
                    self.wake.clear()
                    await self._wait(self.wake, self.settings.event_poll_seconds)
        finally:
            if self.backlog:
                ids = [int(row.id) for row in self.backlog]
                self.backlog.clear()
                with contextlib.suppress(Exception):
                    await release(self.sessionmaker, ids)

    async def _wait(self, event: asyncio.Event, seconds: float) -> None:
        stop = asyncio.ensure_future(self._stopping.wait())
        other = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({stop, other}, timeout=seconds, return_when="FIRST_COMPLETED")
        finally:
            stop.cancel()
            other.cancel()

    async def _send(self, row: Any) -> None:
        # The slot (an HTTP request) frees once the attempt ends; the task stays in flight,
        # and its lease held, until the outcome is committed. `run` counted it as sending.
        sending = True
        try:
            out = await attempt(self.http, self.settings, row)
            self.sending -= 1
            sending = False
            self._slot_free.set()
            await self.recorder.record(row, out)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log_pass_failure(log, f"webhook delivery {row.id} failed unexpectedly", exc)
        finally:
            if sending:
                self.sending -= 1
            self.in_flight.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
            self._slot_free.set()

    async def stop(self, grace: float) -> None:
        """Stop claiming; let in-flight deliveries finish for `grace` s, then release them."""
        self._stopping.set()
        unsent = [int(row.id) for row in self.backlog]
        self.backlog.clear()
        await release(self.sessionmaker, unsent)
        tasks = list(self.in_flight)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            ids = [self.in_flight[t] for t in pending if t in self.in_flight]
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await release(self.sessionmaker, ids)
