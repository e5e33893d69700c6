"""Idempotency-Key on POST /v1/check-requests: replay, reuse with another body, in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.errors import Conflict
from inspection_hub.kit import idempotency
from tests.approvals.conftest import World, request_body


async def _count(sm: async_sessionmaker[AsyncSession], sql: str) -> int:
    async with sm() as s:
        return int((await s.execute(text(sql))).scalar_one())


async def test_same_key_same_body_replays_first_answer(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    headers = {**world.scheduler, "Idempotency-Key": "req-001"}
    body = request_body(world.usccs[0])
    first = await client.post("/v1/check-requests", json=body, headers=headers)
    assert first.status_code == 201
    # same body, other key order: still the same request
    second = await client.post(
        "/v1/check-requests", json=dict(reversed(list(body.items()))), headers=headers
    )
    assert second.status_code == 201
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert await _count(sessionmaker, "SELECT count(*) FROM check_request") == 1
    assert (
        await _count(
            sessionmaker, "SELECT count(*) FROM event WHERE type = 'check_request.submitted'"
        )
        == 1
    )


async def test_same_key_other_body_is_422(client: httpx.AsyncClient, world: World) -> None:
    headers = {**world.scheduler, "Idempotency-Key": "req-002"}
    r = await client.post("/v1/check-requests", json=request_body(world.usccs[0]), headers=headers)
    assert r.status_code == 201
    r = await client.post("/v1/check-requests", json=request_body(world.usccs[1]), headers=headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_keys_are_scoped_per_token(
    client: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    make_headers: Callable[..., Awaitable[dict[str, str]]],
) -> None:
    colleague = await make_headers("scheduler", "SCJG")
    body = request_body(world.usccs[0])
    a = await client.post(
        "/v1/check-requests", json=body, headers={**world.scheduler, "Idempotency-Key": "k"}
    )
    b = await client.post(
        "/v1/check-requests", json=body, headers={**colleague, "Idempotency-Key": "k"}
    )
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert await _count(sessionmaker, "SELECT count(*) FROM check_request") == 2


async def test_failed_request_releases_its_key(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    headers = {**world.scheduler, "Idempotency-Key": "req-003"}
    bad = request_body(world.usccs[0], matters=["NOPE"])
    assert (await client.post("/v1/check-requests", json=bad, headers=headers)).status_code == 422
    assert await _count(sessionmaker, "SELECT count(*) FROM idempotency_key") == 0
    good = request_body(world.usccs[0])
    assert (await client.post("/v1/check-requests", json=good, headers=headers)).status_code == 201


async def test_key_in_flight_is_409(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = request_body(world.usccs[0])
    # A concurrent request holds the claim (committed, not yet answered).
    scheduler_token = await _token_id_of(sessionmaker, world.scheduler["Authorization"].split()[1])
    fp = idempotency.fingerprint("POST", "/v1/check-requests", _normalised(body))
    claim = await idempotency.claim(
        sessionmaker, scope=f"t:{scheduler_token}", key="req-004", fingerprint=fp
    )
    assert claim.replay is None
    r = await client.post(
        "/v1/check-requests", json=body, headers={**world.scheduler, "Idempotency-Key": "req-004"}
    )
    assert r.status_code == 409
    # Truly concurrent duplicates: exactly one is created, the others replay or see 409.
    headers = {**world.scheduler, "Idempotency-Key": "req-005"}
    answers = await asyncio.gather(
        *(client.post("/v1/check-requests", json=body, headers=headers) for _ in range(8))
    )
    codes = sorted(a.status_code for a in answers)
    assert set(codes) <= {201, 409}
    assert codes.count(201) >= 1
    ids = {a.json()["id"] for a in answers if a.status_code == 201}
    assert len(ids) == 1
    assert await _count(sessionmaker, "SELECT count(*) FROM check_request") == 1


async def test_abandoned_claims_are_taken_over_and_old_keys_purged(
    world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    claim = await idempotency.claim(sessionmaker, scope="t:1", key="x", fingerprint="a" * 64)
    assert claim.replay is None
    async with sessionmaker() as s, s.begin():
        await s.execute(
            text("UPDATE idempotency_key SET created_at = now() - interval '2 minutes'")
        )
    again = await idempotency.claim(
        sessionmaker, scope="t:1", key="x", fingerprint="a" * 64, in_flight_seconds=60
    )
    assert again.replay is None  # taken over
    async with sessionmaker() as s, s.begin():
        await s.execute(text("UPDATE idempotency_key SET created_at = now() - interval '25 hours'"))
        await s.execute(
            text(
                "INSERT INTO idempotency_key (scope, key, request_hash) "
                "VALUES ('t:2', 'fresh', repeat('b', 64))"
            )
        )
    async with sessionmaker() as s, s.begin():
        assert await idempotency.purge_expired(s, ttl_hours=24) == 1
    assert await _count(sessionmaker, "SELECT count(*) FROM idempotency_key") == 1


def _normalised(body: dict[str, object]) -> dict[str, object]:
    from inspection_hub.approvals.schemas import CheckRequestCreate

    return CheckRequestCreate.model_validate(body).model_dump(mode="json")


async def _token_id_of(sm: async_sessionmaker[AsyncSession], token: str) -> int:
    from inspection_hub.auth.tokens import hash_token
    from tests.conftest import TEST_PEPPER

    async with sm() as s:
        return int(
            (
                await s.execute(
                    text("SELECT id FROM api_token WHERE token_hash = :h"),
                    {"h": hash_token(token, TEST_PEPPER)},
                )
            ).scalar_one()
        )


async def test_a_release_frees_only_its_own_attempts_claim(
    world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """An attempt whose claim was taken over (it ran past the in-flight expiry) and which then
    fails must not free the claim of the attempt that took over: a third would run beside it."""
    first = await idempotency.claim(sessionmaker, scope="t:1", key="y", fingerprint="c" * 64)
    async with sessionmaker() as s, s.begin():
        await s.execute(
            text("UPDATE idempotency_key SET created_at = now() - interval '2 minutes'")
        )
    second = await idempotency.claim(
        sessionmaker, scope="t:1", key="y", fingerprint="c" * 64, in_flight_seconds=60
    )
    assert second.replay is None
    assert second.claimed_at != first.claimed_at
    await idempotency.release(sessionmaker, first)  # the slow first attempt fails at last
    with pytest.raises(Conflict):  # the second one's claim stands
        await idempotency.claim(sessionmaker, scope="t:1", key="y", fingerprint="c" * 64)
    await idempotency.release(sessionmaker, second)
    third = await idempotency.claim(sessionmaker, scope="t:1", key="y", fingerprint="c" * 64)
    assert third.replay is None
