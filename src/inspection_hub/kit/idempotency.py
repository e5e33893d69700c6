"""Idempotency-Key for POST-create routes: replay the first answer, refuse reuse and races.

Usage in a route (see approvals/router.py)::

    claim = await idempotency.claim(factory, scope=idempotency.scope_of(principal),
                                    key=key, fingerprint=idempotency.fingerprint(path, body))
    if claim.replay is not None:
        return claim.replay.response()
    try:
        ... do the work in the request session ...
        await idempotency.complete(session, claim, 201, body_json)  # same transaction as the work
    except BaseException:
        await idempotency.release(factory, claim)
        raise

Rules: the key is scoped per token (`scope_of`); the same key with the same request replays the
stored answer byte for byte; with another request it is a 422; while the first request is still
running it is a 409. Only successful answers are stored: a failed request releases its key so the
client can correct and retry. The claim is committed in its own short transaction (so concurrent
requests see it); the stored answer commits with the work itself. A claim left in flight by a
crashed process is taken over after `in_flight_seconds`. Keys are purged after `ttl_hours`.

A claim is one attempt's: releasing it never frees a later attempt's claim on the same key. When
the database is out of reach, the release that follows the failed attempt fails too; it is then
retried in the background until it succeeds or the claim would expire anyway, so a client that
retries with its key once the database is back gets its request through instead of being told
"still in flight" for up to `in_flight_seconds`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.db.availability import database_unavailable, outage_summary
from inspection_hub.errors import Conflict, ValidationFailed

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200


class _Caller(Protocol):
    @property
    def user_id(self) -> int: ...

    @property
    def token_id(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A stored answer to replay."""

    status: int
    body: str

    def response(self) -> Response:
        """The replayed HTTP response (same status, same bytes), marked as a replay."""
        return Response(
            content=self.body,
            status_code=self.status,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of claiming a key: either ours to fill, or a stored answer to replay."""

    scope: str
    key: str
    fingerprint: str
    replay: StoredResponse | None = None
    #: When this attempt claimed the key: which claim is this attempt's to release.
    claimed_at: datetime | None = None


def scope_of(caller: _Caller) -> str:
    """Keys are scoped per token (per user for page sessions without a token)."""
    return f"t:{caller.token_id}" if caller.token_id is not None else f"u:{caller.user_id}"


def fingerprint(method: str, path: str, payload: Any) -> str:
    """SHA-256 of the method, path and canonical JSON of the request body."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()


def check_key(key: str) -> str:
    """The key, or a 422 when it is empty, too long or not printable ASCII."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise ValidationFailed(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.",
            errors=[{"field": HEADER, "location": "header", "detail": "invalid key"}],
        )
    return key


_CLAIM = text(
    """
    INSERT INTO idempotency_key (scope, key, request_hash, status, created_at)
    VALUES (:scope, :key, :hash, 'in_flight', now())
    ON CONFLICT (scope, key) DO UPDATE
        SET request_hash = EXCLUDED.request_hash, status = 'in_flight',
            response_status = NULL, response_body = NULL, created_at = now()
        -- take over only a key past its lifetime or a claim abandoned by a crashed process
        WHERE idempotency_key.created_at < now() - make_interval(hours => :ttl_hours)
           OR (idempotency_key.status = 'in_flight'
               AND idempotency_key.created_at < now() - make_interval(secs => :in_flight))
    RETURNING created_at
    """
)
_READ = text(
    """
    SELECT request_hash, status, response_status, response_body
    FROM idempotency_key WHERE scope = :scope AND key = :key
    """
)


async def claim(
    factory: async_sessionmaker[AsyncSession],
    *,
    scope: str,
    key: str,
    fingerprint: str,
    ttl_hours: int = 24,
    in_flight_seconds: int = 60,
) -> Claim:
    """Claim the key in its own committed transaction; 422 on another request, 409 in flight."""
    key = check_key(key)
    params = {
        "scope": scope,
        "key": key,
        "hash": fingerprint,
        "ttl_hours": ttl_hours,
        "in_flight": float(in_flight_seconds),
    }
    async with factory() as session, session.begin():
        claimed = (await session.execute(_CLAIM, params)).first()
        if claimed is not None:
            return Claim(scope, key, fingerprint, claimed_at=claimed.created_at)
        row = (await session.execute(_READ, params)).one()
    if row.request_hash != fingerprint:
        raise ValidationFailed(
            f"This {HEADER} was already used for a different request.",
            errors=[{"field": HEADER, "location": "header", "detail": "reused with another body"}],
        )
    if row.status != "done":
        raise Conflict(f"A request with this {HEADER} is still being processed; retry later.")
    return Claim(
        scope, key, fingerprint, StoredResponse(int(row.response_status), row.response_body)
    )


async def complete(session: AsyncSession, claim: Claim, status: int, body: str) -> None:
    """Store the answer in the caller's transaction, so it commits together with the work."""
    await session.execute(
        text(
            """
            UPDATE idempotency_key SET status = 'done', response_status = :status,
                                       response_body = :body
            WHERE scope = :scope AND key = :key AND request_hash = :hash
            """
        ),
        {
            "status": status,
            "body": body,
            "scope": claim.scope,
            "key": claim.key,
            "hash": claim.fingerprint,
        },
    )


async def release(factory: async_sessionmaker[AsyncSession], claim: Claim) -> None:
    """Forget this attempt's in-flight claim after a failure, so the client may retry with the
    same key; a later attempt's claim on the key (one that took this one over) is left alone."""
    async with factory() as session, session.begin():
        await session.execute(
            text(
                "DELETE FROM idempotency_key WHERE scope = :scope AND key = :key "
                "AND request_hash = :hash AND status = 'in_flight' "
                "AND created_at = :at"
            ),
            {
                "scope": claim.scope,
                "key": claim.key,
                "hash": claim.fingerprint,
                "at": claim.claimed_at,
            },
        )


#: Releases retried in the background (kept referenced until they finish).
_RELEASING: set[asyncio.Task[None]] = set()


async def release_after_failure(
    factory: async_sessionmaker[AsyncSession], claim: Claim, in_flight_seconds: int
) -> None:
    """Release after a failed attempt. If the database is out of reach (the likely reason the
    attempt failed), retry the release in the background, once a second, until it succeeds or
    the claim would have expired anyway; any other error is raised."""
    try:
        await release(factory, claim)
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        log.warning(
            "releasing Idempotency-Key claim: database unavailable (%s); retrying in the "
            "background",
            outage_summary(exc),
        )
        task = asyncio.create_task(_release_later(factory, claim, in_flight_seconds))
        _RELEASING.add(task)
        task.add_done_callback(_RELEASING.discard)


async def _release_later(
    factory: async_sessionmaker[AsyncSession], claim: Claim, in_flight_seconds: int
) -> None:
    deadline = time.monotonic() + in_flight_seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        try:
            await release(factory, claim)
            return
        except Exception as exc:
            if not database_unavailable(exc):
                log.error("releasing Idempotency-Key claim failed", exc_info=exc)
                return


async def purge_expired(session: AsyncSession, *, ttl_hours: int = 24) -> int:
    """Delete keys older than their lifetime; returns how many."""
    result = await session.execute(
        text(
            "DELETE FROM idempotency_key "
            "WHERE created_at < now() - make_interval(hours => :ttl_hours)"
        ),
        {"ttl_hours": ttl_hours},
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass
class Guard:
    """A creating POST's Idempotency-Key, claimed: replay a stored answer, or store ours."""

    claim: Claim | None

    @property
    def replay(self) -> StoredResponse | None:
        """The stored answer of an earlier request with this key and body, if any."""
        return self.claim.replay if self.claim is not None else None

    async def complete(self, session: AsyncSession, status: int, body: str) -> None:
        """Store the answer in the caller's transaction (nothing to do without a key)."""
        if self.claim is not None:
            await complete(session, self.claim, status, body)


@asynccontextmanager
async def guard(
    request: Request, caller: _Caller, key: str | None, body: BaseModel
) -> AsyncIterator[Guard]:
    """Claim ``key`` (if given) for a creating POST: scoped to the caller, fingerprinted by path
    and body, with the application's TTL and in-flight settings; a failure inside the block
    frees the key so the client may retry with it."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    claimed = None
    if key is not None:
        settings = request.app.state.settings
        claimed = await claim(
            factory,
            scope=scope_of(caller),
            key=key,
            fingerprint=fingerprint("POST", request.url.path, body.model_dump(mode="json")),
            ttl_hours=settings.idempotency_ttl_hours,
            in_flight_seconds=settings.idempotency_in_flight_seconds,
        )
    try:
        yield Guard(claimed)
    except BaseException:
        if claimed is not None and claimed.replay is None:
            in_flight = request.app.state.settings.idempotency_in_flight_seconds
            await release_after_failure(factory, claimed, in_flight)
        raise
