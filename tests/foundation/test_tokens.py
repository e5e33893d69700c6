"""Listing and revoking bearer tokens over the API: effect, ownership, idempotency, caches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.auth.cache import TokenCache
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.config import Settings
from inspection_hub.main import create_app

Headers = Callable[..., Awaitable[dict[str, str]]]
SM = async_sessionmaker[AsyncSession]


async def _token_id(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    r = await client.get("/v1/tokens", headers=headers)
    assert r.status_code == 200, r.text
    (current,) = [t for t in r.json()["items"] if t["current"]]
    return int(current["id"])


async def _revoked_at(sm: SM, token_id: int) -> Any:
    async with sm() as s:
        return (
            await s.execute(text("SELECT revoked_at FROM api_token WHERE id = :i"), {"i": token_id})
        ).scalar_one()


async def _revocations(sm: SM) -> list[Any]:
    async with sm() as s:
        return list(
            (
                await s.execute(
                    text(
                        "SELECT actor_name, object_type, object_id, after FROM audit_log "
                        "WHERE action = 'token.revoke' ORDER BY id"
                    )
                )
            ).all()
        )


async def test_revoking_your_own_token_refuses_its_next_call(
    client: httpx.AsyncClient, make_headers: Headers, two_agencies: Any, sessionmaker: SM
) -> None:
    mine = await make_headers("scheduler", "SCJG", name="li")
    other = await make_headers("scheduler", "SCJG", name="li")  # a second token of the same person
    assert (await client.get("/v1/me", headers=mine)).status_code == 200  # now cached
    token_id = await _token_id(client, mine)

    r = await client.post(f"/v1/tokens/{token_id}/revoke", headers=mine)

    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"id", "user", "created_at", "revoked_at", "current"}
    assert (body["id"], body["user"], body["current"]) == (token_id, "li", True)
    assert body["revoked_at"] is not None
    # the same process refuses it at once, although it was cached a moment ago
    refused = await client.get("/v1/me", headers=mine)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await _revoked_at(sessionmaker, token_id)) is not None
    # the person's other token is untouched
    assert (await client.get("/v1/me", headers=other)).status_code == 200
    listed = (await client.get("/v1/tokens", headers=other)).json()["items"]
    assert [(t["id"], t["revoked_at"] is not None) for t in listed] == [
        (token_id + 1, False),
        (token_id, True),
    ]
    audit = await _revocations(sessionmaker)
    assert [(a.actor_name, a.object_type, a.object_id) for a in audit] == [
        ("li", "api_token", str(token_id))
    ]
    assert audit[0].after["user"] == "li"


async def test_the_listing_shows_neither_the_token_nor_its_hash(
    client: httpx.AsyncClient, make_headers: Headers, sessionmaker: SM
) -> None:
    headers = await make_headers("admin")
    secret = headers["Authorization"].removeprefix("Bearer ")
    async with sessionmaker() as s:
        stored = (await s.execute(text("SELECT token_hash, prefix FROM api_token"))).one()
    r = await client.get("/v1/tokens", headers=headers)
    assert r.status_code == 200
    for forbidden in (secret, secret[3:13], stored.token_hash, stored.prefix):
        assert forbidden not in r.text


async def test_an_approver_can_neither_revoke_nor_see_another_users_token(
    client: httpx.AsyncClient, make_headers: Headers, two_agencies: Any, sessionmaker: SM
) -> None:
    approver = await make_headers("approver", "SCJG", name="wang")
    colleague = await make_headers("approver", "SCJG", name="zhao")
    victim = await _token_id(client, colleague)

    r = await client.post(f"/v1/tokens/{victim}/revoke", headers=approver)

    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "https://inspection-hub.example/problems/forbidden"
    assert r.json()["status"] == 403
    assert await _revoked_at(sessionmaker, victim) is None
    assert await _revocations(sessionmaker) == []
    assert (await client.get("/v1/me", headers=colleague)).status_code == 200
    seen = (await client.get("/v1/tokens", headers=approver)).json()["items"]
    assert [t["user"] for t in seen] == ["wang"]
    assert victim not in {t["id"] for t in seen}
    r = await client.get("/v1/tokens", params={"user": "zhao"}, headers=approver)
    assert r.status_code == 403
    assert r.json()["type"].endswith("/forbidden")
    mine = await client.get("/v1/tokens", params={"user": "wang"}, headers=approver)
    assert [t["user"] for t in mine.json()["items"]] == ["wang"]


async def test_an_admin_lists_and_revokes_anyones_token(
    client: httpx.AsyncClient, make_headers: Headers, two_agencies: Any, sessionmaker: SM
) -> None:
    admin = await make_headers("admin", name="root")
    scheduler = await make_headers("scheduler", "YJGL", name="sun")
    supervisor = await make_headers("supervisor", name="qian")
    target = await _token_id(client, scheduler)
    assert (await client.get("/v1/me", headers=scheduler)).status_code == 200  # cached

    everyone = (await client.get("/v1/tokens", headers=admin)).json()["items"]
    assert {"root", "sun", "qian"} <= {t["user"] for t in everyone}
    assert [t["id"] for t in everyone] == sorted((t["id"] for t in everyone), reverse=True)
    only_sun = (await client.get("/v1/tokens", params={"user": "sun"}, headers=admin)).json()
    assert [t["id"] for t in only_sun["items"]] == [target]
    nobody = await client.get("/v1/tokens", params={"user": "nobody"}, headers=admin)
    assert nobody.json() == {"items": [], "next_cursor": None}

    r = await client.post(f"/v1/tokens/{target}/revoke", headers=admin)

    assert r.status_code == 200, r.text
    assert (r.json()["user"], r.json()["current"]) == ("sun", False)
    assert (await client.get("/v1/me", headers=scheduler)).status_code == 401
    assert (await client.get("/v1/me", headers=admin)).status_code == 200
    assert (await client.get("/v1/me", headers=supervisor)).status_code == 200
    audit = await _revocations(sessionmaker)
    assert [(a.actor_name, a.object_id, a.after["user"]) for a in audit] == [
        ("root", str(target), "sun")
    ]


async def test_the_token_list_pages_with_a_cursor(
    client: httpx.AsyncClient, make_headers: Headers
) -> None:
    admin = await make_headers("admin", name="root")
    for _ in range(4):
        await make_headers("supervisor", name="pager")
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"user": "pager", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/tokens", params=params, headers=admin)).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 4
    assert seen == sorted(seen, reverse=True)
    bad = await client.get("/v1/tokens", params={"cursor": "%%%"}, headers=admin)
    assert bad.status_code == 422


async def test_revoking_twice_is_idempotent_and_audited_once(
    client: httpx.AsyncClient, make_headers: Headers, sessionmaker: SM
) -> None:
    admin = await make_headers("admin", name="root")
    holder = await make_headers("supervisor", name="zhou")
    target = await _token_id(client, holder)

    first = await client.post(f"/v1/tokens/{target}/revoke", headers=admin)
    second = await client.post(f"/v1/tokens/{target}/revoke", headers=admin)

    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert await _revoked_at(sessionmaker, target) is not None
    assert len(await _revocations(sessionmaker)) == 1
    async with sessionmaker() as s:
        events = (await s.execute(text("SELECT count(*) FROM event"))).scalar_one()
    assert events == 0  # no event type exists for tokens


async def test_concurrent_revocations_record_one_audit_row(
    client: httpx.AsyncClient, make_headers: Headers, sessionmaker: SM
) -> None:
    admin = await make_headers("admin", name="root")
    holder = await make_headers("supervisor", name="wu")
    target = await _token_id(client, holder)

    answers = await asyncio.gather(
        *(client.post(f"/v1/tokens/{target}/revoke", headers=admin) for _ in range(6))
    )

    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["revoked_at"] for a in answers}) == 1
    assert len(await _revocations(sessionmaker)) == 1


async def test_an_unknown_or_malformed_token_id_changes_nothing(
    client: httpx.AsyncClient, make_headers: Headers, sessionmaker: SM
) -> None:
    admin = await make_headers("admin", name="root")
    r = await client.post("/v1/tokens/424242/revoke", headers=admin)
    assert r.status_code == 404
    assert r.json()["type"].endswith("/not-found")
    assert (await client.post("/v1/tokens/abc/revoke", headers=admin)).status_code == 422
    too_big = await client.post(f"/v1/tokens/{2**63}/revoke", headers=admin)
    assert too_big.status_code == 422
    assert await _revocations(sessionmaker) == []
    async with sessionmaker() as s:
        assert (
            await s.execute(text("SELECT count(*) FROM api_token WHERE revoked_at IS NOT NULL"))
        ).scalar_one() == 0


@pytest.fixture
async def second_app(settings: Settings, database_url: str) -> AsyncIterator[Any]:
    """Another process serving the same database: its own engine and its own token cache."""
    application = create_app(settings, database_url)
    async with application.router.lifespan_context(application):
        yield application


async def test_another_process_refuses_a_revoked_token_once_its_cache_entry_expires(
    client: httpx.AsyncClient,
    second_app: Any,
    make_headers: Headers,
    two_agencies: Any,
    sessionmaker: SM,
) -> None:
    admin = await make_headers("admin", name="root")
    holder = await make_headers("scheduler", "SCJG", name="he")
    target = await _token_id(client, holder)
    transport = httpx.ASGITransport(app=second_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://other") as elsewhere:
        assert (await elsewhere.get("/v1/me", headers=holder)).status_code == 200  # cached there

        assert (await client.post(f"/v1/tokens/{target}/revoke", headers=admin)).status_code == 200
        assert await _revoked_at(sessionmaker, target) is not None

        # the other process still holds its entry: the documented window of token_cache_seconds
        cache: TokenCache = second_app.state.token_cache
        assert (await elsewhere.get("/v1/me", headers=holder)).status_code == 200
        original = cache.clock
        try:
            cache.clock = lambda: original() + cache.ttl + 1  # the TTL has passed
            after_ttl = await elsewhere.get("/v1/me", headers=holder)
        finally:
            cache.clock = original
        assert after_ttl.status_code == 401
        assert "revoked" in after_ttl.json()["detail"]
        # and it stays refused: a refusal is never cached as a principal
        assert (await elsewhere.get("/v1/me", headers=holder)).status_code == 401


P = Principal(1, "li", "李", Role.scheduler, "SCJG")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_evicted_token_cannot_be_cached_again_within_the_ttl() -> None:
    """A request that read the token as live just before the revocation committed must not put
    it back into the cache."""
    clock = Clock()
    cache = TokenCache(5.0, clock=clock)
    cache.put("h", P)
    cache.put("other", P)
    cache.evict("h")
    assert cache.get("h") is None
    cache.put("h", P)  # the late put of a request in flight
    assert cache.get("h") is None
    assert cache.get("other") == P
    clock.now += 5.0
    cache.put("h", P)
    assert cache.get("h") == P
    cache.evict("never-seen")  # evicting an unknown hash is harmless
    assert cache.get("h") == P


def test_token_hash_is_hmac_sha256_of_the_token_with_the_pepper() -> None:
    # Stored hashes depend on the exact function: HMAC-SHA256 of the token keyed by the pepper,
    # hex; a different pepper or token gives another one.
    import hashlib
    import hmac

    from inspection_hub.auth.tokens import hash_token, new_token

    token = new_token()
    pepper = "pepper-" + "x" * 40
    expected = hmac.new(pepper.encode(), token.encode(), hashlib.sha256).hexdigest()
    assert hash_token(token, pepper) == expected
    assert len(expected) == 64
    assert hash_token(token, pepper + "y") != expected
    assert hash_token(token + "z", pepper) != expected
    assert (
        hash_token("令牌", pepper)
        == hmac.new(pepper.encode(), "令牌".encode(), "sha256").hexdigest()
    )
