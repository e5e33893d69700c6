"""Security properties over HTTP: headers on every response, public rate limits, size limits.

Request-size limits (413 before the body is read) are tested in
tests/foundation/test_enterprise_import.py (test_oversized_upload_refused_413); the audit
chain's tamper detection in tests/foundation/test_audit.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from inspection_hub.config import Settings
from inspection_hub.kit.ratelimit import TokenBuckets
from inspection_hub.main import create_app
from tests.foundation.test_authz_matrix import api_routes

EXPECTED_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def _assert_secure(response: httpx.Response) -> None:
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name)
    assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", "")
    assert response.headers.get("x-request-id")


def _get_paths(app: Any) -> list[str]:
    """Every GET route without path parameters (pages, public JSON, /v1 lists, health)."""
    return sorted(
        {
            route.path
            for route in api_routes(app)
            if "GET" in route.methods and "{" not in route.path
        }
    )


async def test_every_response_carries_the_security_headers(
    app: Any, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    paths = [p for p in _get_paths(app) if p != "/openapi.json"]
    assert "/healthz" in paths
    assert any(p.startswith("/public/") for p in paths)
    statuses: set[int] = set()
    for path in paths:
        for headers in (admin, {}):
            r = await client.get(path, headers=headers)
            _assert_secure(r)
            statuses.add(r.status_code)
    # errors (401, 404, 405, 422) carry them as well
    for r in (
        await client.get("/v1/agencies"),
        await client.get("/no/such/page"),
        await client.delete("/healthz"),
        await client.post("/v1/agencies", json={"x": 1}, headers=admin),
    ):
        _assert_secure(r)
        statuses.add(r.status_code)
    assert {200, 401, 404, 405, 422} <= statuses


@pytest.fixture
async def limited_client(settings: Settings, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a tight public budget: 3 requests at once, 1 per second after that."""
    tight = settings.model_copy(
        update={"public_rate_limit_per_second": 1.0, "public_rate_limit_burst": 3}
    )
    application = create_app(tight, database_url)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.7", 4711))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_public_routes_answer_429_with_retry_after_past_the_budget(
    limited_client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    statuses = [
        (await limited_client.get("/public/v1/inspection-code-keys")).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 200]
    r = await limited_client.get("/public/v1/plans")
    assert r.status_code == 429
    assert r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["status"] == 429
    _assert_secure(r)
    for prefix in ("/s/anything", "/c/anything"):
        assert (await limited_client.get(prefix)).status_code == 429
    # officials' routes and health are not limited by the public budget
    assert (await limited_client.get("/healthz")).status_code == 200
    assert (await limited_client.get("/v1/agencies", headers=admin)).status_code == 200


def test_token_bucket_refills_at_its_rate_and_keys_by_client() -> None:
    now = [100.0]
    buckets = TokenBuckets(rate=2.0, burst=2, clock=lambda: now[0])
    assert [buckets.take("a"), buckets.take("a")] == [0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0.0  # another client has its own bucket
    now[0] += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0


def test_token_bucket_memory_is_bounded() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_clients=100)
    for i in range(1000):
        buckets.take(f"198.51.100.{i}")
    assert len(buckets._buckets) == 100


async def test_request_ids_are_unique_and_a_given_one_is_kept(client: httpx.AsyncClient) -> None:
    ids = {(await client.get("/healthz")).headers["x-request-id"] for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 32 for i in ids)
    given = await client.get("/healthz", headers={"X-Request-ID": "gateway-7f3a"})
    assert given.headers["x-request-id"] == "gateway-7f3a"
