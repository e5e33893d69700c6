"""Delivering surveys to enterprises' systems as signed webhooks (Standard Webhooks).

`send_signed_webhook` is the one call that puts bytes on the wire; it goes through the SSRF
guard (`webhooks.ssrf.guarded_post`). When the shared webhook delivery machinery lands, that
call is replaced by an enqueue into it (same signing, retries, dead letters).
`deliver_callbacks` claims due callbacks with a lease (SKIP LOCKED), posts them with bounded
concurrency outside any transaction, and records the outcome with backoff.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from inspection_hub.config import Settings
from inspection_hub.surveys.service import QUESTIONS
from inspection_hub.webhooks.ssrf import UnsafeURL, guarded_post

log = logging.getLogger(__name__)

CALLBACK_EVENT_TYPE = "survey.requested"
LEASE = timedelta(seconds=120)


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
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, payload),
        "user-agent": "inspection-hub-surveys/1",
    }
    try:
        response = await guarded_post(
            http,
            url,
            content=payload.encode(),
            headers=headers,
            timeout=settings.webhook_timeout_seconds,
            allow_private=settings.allow_private_callback_urls,
            allow_http=settings.allow_private_callback_urls or settings.env != "production",
        )
    except UnsafeURL as exc:
        return DeliveryResult(False, None, f"refused by the SSRF guard: {exc.reason}")
    except (httpx.HTTPError, TimeoutError, OSError) as exc:
        return DeliveryResult(False, None, f"{type(exc).__name__}: {exc}"[:500])
    ok = 200 <= response.status_code < 300
    return DeliveryResult(ok, response.status_code, None if ok else f"HTTP {response.status_code}")


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
        callback_status = CASE WHEN x.ok THEN 'delivered'
                               WHEN s.callback_attempts >= :max_attempts THEN 'dead'
                               ELSE 'pending' END,
        callback_delivered_at = CASE WHEN x.ok THEN CAST(:now AS timestamptz)
            ELSE s.callback_delivered_at END,
        callback_next_at = CASE WHEN x.ok THEN NULL ELSE x.next_at END,
        callback_last_error = x.error
    FROM unnest(CAST(:usccs AS char(18)[]), CAST(:ids AS bigint[]), CAST(:oks AS boolean[]),
                CAST(:errors AS text[]), CAST(:next_ats AS timestamptz[]))
         AS x(uscc, id, ok, error, next_at)
    WHERE s.enterprise_uscc = x.uscc AND s.id = x.id AND s.callback_status = 'pending'
    """
)


def backoff(attempt: int) -> timedelta:
    """Exponential backoff: 30 s, 1 min, 2 min … capped at 12 h (about three days in all)."""
    return timedelta(seconds=min(30 * 2 ** max(attempt - 1, 0), 12 * 3600))


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
            "questions": [q.model_dump() for q in QUESTIONS],
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
    gate = asyncio.Semaphore(concurrency or settings.survey_callback_concurrency)

    async def one(row: Any) -> DeliveryResult:
        async with gate:
            return await send_signed_webhook(
                http,
                row.callback_url,
                secret=callback_secret_for(settings, row.enterprise_uscc),
                msg_id=f"survey_{row.id}_{row.callback_attempts}",
                body=callback_body(row),
                settings=settings,
            )

    results = await asyncio.gather(*(one(r) for r in rows))
    done = datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            _RECORD,
            {
                "now": done,
                "max_attempts": settings.survey_callback_max_attempts,
                "usccs": [r.enterprise_uscc for r in rows],
                "ids": [r.id for r in rows],
                "oks": [res.ok for res in results],
                "errors": [res.error for res in results],
                "next_ats": [done + backoff(r.callback_attempts) for r in rows],
            },
        )
    failed = sum(1 for res in results if not res.ok)
    if failed:
        log.warning("survey callbacks: %d of %d failed", failed, len(rows))
    return len(rows)
