"""The delivery path's shortcuts keep its guarantees: checked-URL cache, batched outcomes,
claiming ahead in the worker loop, and the one shared HTTP client."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from inspection_hub.config import Settings
from inspection_hub.events import types as ev
from inspection_hub.events.outbox import emit
from inspection_hub.events.relay import drain
from inspection_hub.webhooks.dispatcher import Dispatcher
from inspection_hub.webhooks.http import make_http_client, set_shared_client, shared_client
from inspection_hub.webhooks.ssrf import TargetCache, UnsafeURL, guarded_post
from tests.fixtures.receiver import Receiver
from tests.fixtures.receiver import receiver as receiver
from tests.webhooks.test_ssrf import FAKE_HOST, FakeDNS
from tests.webhooks.test_ssrf import Receiver as SsrfReceiver
from tests.webhooks.test_ssrf import receiver as ssrf_receiver  # noqa: F401 - fixture


async def _post(
    client: httpx.AsyncClient, url: str, cache: TargetCache, *, allow_private: bool = True
) -> httpx.Response:
    return await guarded_post(
        client,
        url,
        content=b"{}",
        headers={"content-type": "application/json"},
        timeout=5.0,
        allow_private=allow_private,
        allow_http=True,
        cache=cache,
    )


@pytest.mark.asyncio
async def test_checked_url_is_reused_within_ttl_and_pinned(
    ssrf_receiver: SsrfReceiver,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One lookup serves deliveries within the TTL; after it the name is checked again."""
    dns = FakeDNS(["127.0.0.1"])
    dns.install(monkeypatch)
    url = f"http://{FAKE_HOST}:{ssrf_receiver.port}/in"
    cache = TargetCache(ttl=60.0)
    async with httpx.AsyncClient(trust_env=False) as client:
        for _ in range(3):
            assert (await _post(client, url, cache)).status_code == 204
        assert dns.lookups == 1
        assert all(h["Host"] == f"{FAKE_HOST}:{ssrf_receiver.port}" for _, _, h, _ in
                   ssrf_receiver.requests)  # fmt: skip
        # A cached acceptance is never reused under stricter settings.
        with pytest.raises(UnsafeURL):
            await _post(client, url, cache, allow_private=False)
        assert dns.lookups == 2
        assert len(ssrf_receiver.requests) == 3
        # Re-pointed at a metadata address: a fresh check refuses it, and refusals are not kept.
        dns.answers = ["169.254.169.254"]
        fresh = TargetCache(ttl=60.0)
        for _ in range(2):
            with pytest.raises(UnsafeURL, match="metadata"):
                await _post(client, url, fresh)
        assert dns.lookups == 4
        # Once the TTL has run out, the name is looked up (and here refused) again.
        expired = TargetCache(ttl=0.0)
        with pytest.raises(UnsafeURL, match="metadata"):
            await _post(client, url, expired)
        assert dns.lookups == 5
    assert len(ssrf_receiver.requests) == 3


@pytest.mark.asyncio
async def test_small_answer_read_whole_and_large_one_bounded(
    ssrf_receiver: SsrfReceiver,  # noqa: F811
) -> None:
    """A short body is kept as sent; a long one is cut at the bound."""
    url = f"http://127.0.0.1:{ssrf_receiver.port}/"
    async with httpx.AsyncClient(trust_env=False) as client:
        ssrf_receiver.status = 200
        ssrf_receiver.response_body = b'{"ok":true}'
        response = await _post(client, url, TargetCache())
        assert response.content == b'{"ok":true}'
        ssrf_receiver.response_body = b"y" * (200 * 1024)
        response = await _post(client, url, TargetCache())
        assert len(response.content) == 64 * 1024


async def _subscribe(client: httpx.AsyncClient, admin: dict[str, str], url: str) -> None:
    r = await client.post(
        "/v1/webhook-subscriptions",
        json={"url": url, "event_types": ["enterprise.updated"]},
        headers=admin,
    )
    assert r.status_code == 201, r.text


async def _rows(sessionmaker: Any) -> list[Any]:
    async with sessionmaker() as session:
        return list(
            (
                await session.execute(
                    text("SELECT status, attempts, claimed_until FROM webhook_delivery")
                )
            ).all()
        )


async def test_worker_loop_delivers_all_and_releases_unsent_claims_on_stop(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: Any,
    settings: Settings,
    receiver: Receiver,
) -> None:
    """Claimed-ahead rows not yet sent go back to the queue at a graceful stop."""
    await _subscribe(client, admin, receiver.url)
    async with sessionmaker() as session, session.begin():
        for i in range(20):
            await emit(session, ev.ENTERPRISE_UPDATED, f"E{i}", {"i": i})
    await drain(sessionmaker, consumers=["webhook_dispatcher"])
    receiver.delay = 0.2
    slow = settings.model_copy(update={"webhook_concurrency": 1})
    async with make_http_client(slow) as http:
        dispatcher = Dispatcher(sessionmaker, http, slow, asyncio.Event())
        task = asyncio.create_task(dispatcher.run())
        for _ in range(500):
            if receiver.requests:
                break
            await asyncio.sleep(0.01)
        await dispatcher.stop(5.0)
        await task
    rows = await _rows(sessionmaker)
    delivered = [r for r in rows if r.status == "delivered"]
    assert 1 <= len(delivered) < 20
    assert all(r.claimed_until is None for r in rows)  # nothing waits for a lease to run out
    assert len(receiver.requests) == len(delivered)

    receiver.delay = 0.0
    async with make_http_client(settings) as http:
        dispatcher = Dispatcher(sessionmaker, http, settings, asyncio.Event())
        task = asyncio.create_task(dispatcher.run())
        for _ in range(500):
            if all(r.status == "delivered" for r in await _rows(sessionmaker)):
                break
            await asyncio.sleep(0.02)
        await dispatcher.stop(5.0)
        await task
    rows = await _rows(sessionmaker)
    assert [r.status for r in rows] == ["delivered"] * 20
    assert all(r.attempts == 1 for r in rows)
    ids = {req.headers["webhook-id"] for req in receiver.requests}
    assert len(ids) == 20 == len(receiver.requests)


async def test_scheduled_jobs_use_the_registered_shared_client(settings: Settings) -> None:
    """`shared_client` hands out the process's client, and makes one only if none is set."""
    async with make_http_client(settings) as mine:
        set_shared_client(mine)
        try:
            assert shared_client(settings) is mine
        finally:
            set_shared_client(None)
    fallback = shared_client(settings)
    try:
        assert fallback is not mine
        assert shared_client(settings) is fallback
        assert fallback.follow_redirects is False
    finally:
        set_shared_client(None)
        await fallback.aclose()
