"""The per-process token cache: positive answers only, expiring, bounded."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from inspection_hub.auth.cache import TokenCache
from inspection_hub.auth.principal import Principal, Role

P = Principal(1, "li", "李", Role.scheduler, "SCJG")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_the_ttl() -> None:
    clock = Clock()
    cache = TokenCache(5.0, clock=clock)
    cache.put("h1", P)
    clock.now += 4.9
    assert cache.get("h1") == P
    clock.now += 0.2
    assert cache.get("h1") is None


def test_zero_ttl_disables_and_size_is_bounded() -> None:
    off = TokenCache(0)
    off.put("h", P)
    assert off.get("h") is None
    small = TokenCache(60, max_entries=2)
    for key in ("a", "b", "c"):
        small.put(key, P)
    assert small.get("a") is None
    assert small.get("b") == P
    assert small.get("c") == P


async def test_a_revoked_token_stops_working_once_its_entry_expires(
    app: Any, client: httpx.AsyncClient, make_headers: Any, sessionmaker: Any
) -> None:
    headers = await make_headers("supervisor", name="revoked.person")
    assert (await client.get("/v1/me", headers=headers)).status_code == 200
    async with sessionmaker() as s, s.begin():
        await s.execute(text("UPDATE api_token SET revoked_at = now()"))
    cache: TokenCache = app.state.token_cache
    original = cache.clock
    try:
        cache.clock = lambda: original() + cache.ttl + 1  # the TTL has passed
        r = await client.get("/v1/me", headers=headers)
    finally:
        cache.clock = original
    assert r.status_code == 401
    assert "revoked" in r.json()["detail"]


async def test_import_with_a_cached_token_runs_inside_the_request_transaction(
    client: httpx.AsyncClient, admin: dict[str, str], sessionmaker: Any
) -> None:
    """With the principal cached, the import is the request's first statement: COPY into its
    ON COMMIT DROP temp table must still run inside the transaction (regression)."""
    from tests.foundation.test_enterprise_import import post_csv, rows, to_csv

    assert (await client.get("/v1/me", headers=admin)).status_code == 200  # now cached
    first = await post_csv(client, admin, to_csv(rows(3, seed=5)))
    second = await post_csv(client, admin, to_csv(rows(3, seed=6, start=10)))
    assert (first.status_code, second.status_code) == (200, 200), second.text
    async with sessionmaker() as s:
        count = (await s.execute(text("SELECT count(*) FROM enterprise"))).scalar_one()
    assert count == first.json()["created"] + second.json()["created"]
