"""Health, readiness, identity and the basic agency flow."""

from __future__ import annotations

import httpx


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"


async def test_me_names_the_token_owner(client: httpx.AsyncClient, make_headers) -> None:  # type: ignore[no-untyped-def]
    headers = await make_headers("supervisor", name="zhao.supervisor")
    r = await client.get("/v1/me", headers=headers)
    assert r.status_code == 200
    assert r.json() == {
        "username": "zhao.supervisor",
        "display_name": "zhao.supervisor",
        "role": "supervisor",
        "agency": None,
    }


async def test_missing_and_unknown_token_are_401(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/me")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("/unauthenticated")
    r = await client.get("/v1/me", headers={"Authorization": "Bearer ih_nope"})
    assert r.status_code == 401
