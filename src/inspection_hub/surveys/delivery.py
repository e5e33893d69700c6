"""Delivering surveys to enterprises' systems as signed webhooks (Standard Webhooks).

The event backbone's deliveries are per webhook subscription (one secret per subscription);
a survey callback goes to the enterprise's own URL with a per-enterprise secret, which that
machinery has no entry point for. So surveys keep their own small queue (columns on `survey`)
but use the backbone's parts for everything on the wire: the same Standard Webhooks headers
(`webhooks.dispatcher.sign_headers`), the same SSRF guard (`webhooks.ssrf.guarded_post`), the
same retry schedule with jitter and `Retry-After` (`retry_delay`, `parse_retry_after`: about
three days), then a dead letter (`callback_status = 'dead'`; the link still works).
`deliver_callbacks` claims due callbacks with a lease (SKIP LOCKED), posts them with bounded
concurrency outside any transaction, and records the outcomes in one statement.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.config import Settings
from inspection_hub.surveys.service import QUESTIONS
from inspection_hub.webhooks.dispatcher import parse_retry_after, retry_delay, sign_headers
from inspection_hub.webhooks.ssrf import TargetCache, UnsafeURL, guarded_post

log = logging.getLogger(__name__)

CALLBACK_EVENT_TYPE = "survey.requested"
LEASE = timedelta(seconds=120)
# Checked callback URLs, kept a few seconds (addresses stay pinned; see `TargetCache`).
TARGETS = TargetCache(ttl=5.0)


def callback_secret_for(settings: Settings, enterprise_uscc: str) -> str:
    """The enterprise's signing secret (whsec_…), derived from the platform master secret."""
    master = settings.survey_callback_secret or settings.token_pepper
    key = hmac.new(
        master.encode(), b"survey-callback:" + enterprise_uscc.encode(), hashlib.sha256
    ).digest()
    return "whsec_" + base64.b64encode(key).decode()


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What one delivery attempt did."""

    ok: bool
    status_code: int | None
    error: str | None
    retry_after: float | None = None
    gone: bool = False


async def send_signed_webhook(
    http: httpx.AsyncClient,
    url: str,
    *,
    secret: str,
    msg_id: str,
    body: dict[str, Any],
    settings: Settings,
) -> DeliveryResult:
    """POST one Standard Webhooks message through the SSRF guard; 2xx counts as delivered."""
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
    headers = sign_headers(secret, msg_id, payload, datetime.now(UTC))
    try:
        response = await guarded_post(
            http,
            url,
            content=payload.encode(),
            headers=headers,
            timeout=settings.webhook_timeout_seconds,
            allow_private=settings.allow_private_callback_urls,
            allow_http=settings.allow_private_callback_urls or settings.env != "production",
            cache=TARGETS,
        )
    except UnsafeURL as exc:
        return DeliveryResult(False, None, f"refused by the SSRF guard: {exc.reason}")
    except (httpx.HTTPError, TimeoutError, OSError) as exc:
        return DeliveryResult(False, None, f"{type(exc).__name__}: {exc}"[:500])
    code = response.status_code
    if 200 <= code < 300:
        return DeliveryResult(True, code, None)
    return DeliveryResult(
        False,
        code,
        f"HTTP {code}",
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        gone=code == 410,
    )


_CLAIM = text(
    """
    WITH due AS (
        SELECT enterprise_uscc, id FROM survey
        WHERE callback_status = 'pending' AND callback_next_at <= CAST(:now AS timestamptz)
            AND status = 'sent'
        ORDER BY callback_next_at, id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE survey s SET callback_next_at = CAST(:lease_until AS timestamptz),
            callback_attempts = s.callback_attempts + 1
        FROM due WHERE s.enterprise_uscc = due.enterprise_uscc AND s.id = due.id
        RETURNING s.enterprise_uscc, s.id, s.inspection_id, s.callback_url, s.callback_attempts,
                  s.link_event_id, s.expires_at
    )
    SELECT c.enterprise_uscc, c.id, c.inspection_id, c.callback_url, c.callback_attempts,
           c.expires_at, e.payload->>'token' AS token, e.payload->>'answer_url' AS answer_url,
           e.payload->>'page_url' AS page_url,
           i.agency_code, a.name AS agency_name, i.visit_date,
           COALESCE((SELECT array_agg(m.name ORDER BY m.code)
                     FROM inspection_matter im JOIN matter m ON m.code = im.matter_code
                     WHERE im.enterprise_uscc = c.enterprise_uscc
                       AND im.inspection_id = c.inspection_id), '{}') AS matters,
           (SELECT count(*) FROM inspection_inspector ii
            WHERE ii.enterprise_uscc = c.enterprise_uscc AND ii.inspection_id = c.inspection_id
              AND ii.present IS TRUE) AS inspector_count
    FROM claimed c
    JOIN event e ON e.id = c.link_event_id
    JOIN inspection i ON i.enterprise_uscc = c.enterprise_uscc AND i.id = c.inspection_id
    JOIN agency a ON a.code = i.agency_code
    """
)

_RECORD = text(
    """
    UPDATE survey s SET
        callback_status = x.status,
        callback_delivered_at = CASE WHEN x.status = 'delivered' THEN CAST(:now AS timestamptz)
            ELSE s.callback_delivered_at END,
        callback_next_at = CASE WHEN x.status = 'pending' THEN x.next_at END,
        callback_last_error = x.error
    FROM unnest(CAST(:usccs AS char(18)[]), CAST(:ids AS bigint[]), CAST(:statuses AS text[]),
                CAST(:errors AS text[]), CAST(:next_ats AS timestamptz[]),
                CAST(:attempts AS integer[]))
         AS x(uscc, id, status, error, next_at, attempts)
    WHERE s.enterprise_uscc = x.uscc AND s.id = x.id
      -- Still pending and still the attempt this batch claimed (a claim after an expired lease
      -- counts another attempt). Inside CASE so that PostgreSQL cannot answer it from the pending
      -- rows' partial index: the rows are found by key, one probe each (decision D31).
      AND CASE WHEN s.callback_status = 'pending' THEN s.callback_attempts = x.attempts
               ELSE false END
    """
)


def next_step(
    settings: Settings, attempts: int, result: DeliveryResult, now: datetime
) -> tuple[str, datetime | None]:
    """After an attempt: delivered, pending again at a time (the webhook schedule), or dead."""
    if result.ok:
        return "delivered", None
    if result.gone:
        return "dead", None
    delay = retry_delay(settings, attempts, result.retry_after)
    if delay is None:
        return "dead", None
    return "pending", now + timedelta(seconds=delay)


@functools.cache
def _questions() -> list[dict[str, Any]]:
    return [q.model_dump() for q in QUESTIONS]


def callback_body(row: Any) -> dict[str, Any]:
    """The signed message an enterprise's system receives: questions, record and answer URL."""
    return {
        "type": CALLBACK_EVENT_TYPE,
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {
            "survey_id": row.id,
            "inspection_id": row.inspection_id,
            "enterprise": row.enterprise_uscc,
            "answer_url": row.answer_url,
            "page_url": row.page_url,
            "expires_at": row.expires_at.isoformat() if row.expires_at else None,
            "record": {
                "agency_code": row.agency_code,
                "agency_name": row.agency_name,
                "visit_date": row.visit_date.isoformat() if row.visit_date else None,
                "matters": list(row.matters),
                "inspector_count": int(row.inspector_count),
            },
            "questions": _questions(),
        },
    }


async def deliver_callbacks(
    sessionmaker: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    settings: Settings,
    *,
    limit: int | None = None,
    concurrency: int | None = None,
    now: datetime | None = None,
) -> int:
    """Deliver one batch of due survey callbacks; returns how many were attempted."""
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    async with sessionmaker() as session, session.begin():
        rows = (
            await session.execute(
                _CLAIM,
                {
                    "now": now,
                    "limit": limit or settings.survey_dispatch_batch,
                    "lease_until": now + LEASE,
                },
            )
        ).all()
    if not rows:
        return 0
    claimed = time.perf_counter()
    results: list[DeliveryResult | None] = [None] * len(rows)
    queue = iter(range(len(rows)))

    async def sender() -> None:
        # A fixed set of senders pulling from the batch: at most `concurrency` in flight.
        for i in queue:
            row = rows[i]
            results[i] = await send_signed_webhook(
                http,
                row.callback_url,
                secret=callback_secret_for(settings, row.enterprise_uscc),
                msg_id=f"msg_survey_{row.id}",  # the same on every retry: receivers dedupe on it
                body=callback_body(row),
                settings=settings,
            )

    width = max(1, min(concurrency or settings.survey_callback_concurrency, len(rows)))
    await asyncio.gather(*(sender() for _ in range(width)))
    sent = time.perf_counter()
    done = datetime.now(UTC)
    outcomes = [res for res in results if res is not None]
    steps = [
        next_step(settings, int(r.callback_attempts), res, done)
        for r, res in zip(rows, outcomes, strict=True)
    ]
    async with sessionmaker() as session, session.begin():
        await session.execute(
            _RECORD,
            {
                "now": done,
                "usccs": [r.enterprise_uscc for r in rows],
                "ids": [r.id for r in rows],
                "statuses": [status for status, _ in steps],
                "errors": [res.error for res in outcomes],
                "next_ats": [at for _, at in steps],
                "attempts": [int(r.callback_attempts) for r in rows],
            },
        )
    failed = sum(1 for res in outcomes if not res.ok)
    if failed:
        log.warning("survey callbacks: %d of %d failed", failed, len(rows))
    log.debug(
        "survey callbacks: %d in %.3f s (claim %.3f s, send %.3f s, record %.3f s)",
        len(rows),
        time.perf_counter() - started,
        claimed - started,
        sent - claimed,
        time.perf_counter() - sent,
    )
    return len(rows)
