"""Webhook subscriptions and deliveries against a real receiver on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from standardwebhooks import Webhook, WebhookVerificationError

from inspection_hub.config import Settings
from inspection_hub.events import types as ev
from inspection_hub.events.outbox import emit
from inspection_hub.events.relay import drain
from inspection_hub.webhooks.dispatcher import deliver_due, parse_retry_after
from tests.fixtures.receiver import Receiver, receiver  # noqa: F401 - fixture

FAST = [0.0, 0.0, 0.0]


async def _subscribe(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, types: list[str]
) -> dict[str, Any]:
    r = await client.post(
        "/v1/webhook-subscriptions",
        json={"url": url, "event_types": types, "description": "test"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def _emit(sessionmaker: Any, n: int = 1, agency: str = "SCJG") -> None:
    async with sessionmaker() as session, session.begin():
        for i in range(n):
            await emit(
                session, ev.CHECK_REQUEST_SUBMITTED, i + 1, {"n": i + 1}, agency_codes=[agency]
            )


async def _pump(app: Any, sessionmaker: Any, settings: Settings, rounds: int = 1) -> int:
    await drain(sessionmaker, consumers=["webhook_dispatcher"])
    sent = 0
    for _ in range(rounds):
        sent += await deliver_due(sessionmaker, app.state.http, settings)
    return sent


async def _deliveries(sessionmaker: Any) -> list[Any]:
    async with sessionmaker() as session:
        return list(
            (await session.execute(text("SELECT * FROM webhook_delivery ORDER BY id"))).all()
        )


async def test_signed_delivery_verifies_and_tampering_fails(
    app: Any,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: Any,
    settings: Settings,
    receiver: Receiver,  # noqa: F811
) -> None:
    """Signatures verify with the reference library; a tampered body does not."""
    sub = await _subscribe(client, admin, receiver.url, ["check_request.submitted"])
    assert sub["secret"].startswith("whsec_")
    r = await client.get(f"/v1/webhook-subscriptions/{sub['id']}", headers=admin)
    assert r.status_code == 200
    assert "secret" not in r.json()
    async with sessionmaker() as session:
        stored = await session.execute(text("SELECT secret_encrypted FROM webhook_subscription"))
        assert sub["secret"] not in stored.scalar_one()
    await _emit(sessionmaker)
    assert await _pump(app, sessionmaker, settings) == 1
    assert len(receiver.requests) == 1
    req = receiver.requests[0]
    payload = Webhook(sub["secret"]).verify(req.body, req.headers)
    assert payload["type"] == "check_request.submitted"
    assert payload["data"] == {"n": 1}
    assert isinstance(payload["event_id"], int)
    assert req.headers["webhook-id"] == f"msg_{payload['event_id']}_{sub['id']}"
    tampered = req.body.replace(b'"n":1', b'"n":2')
    with pytest.raises(WebhookVerificationError):
        Webhook(sub["secret"]).verify(tampered, req.headers)
    (row,) = await _deliveries(sessionmaker)
    assert row.status == "delivered"
    assert row.attempts == 1
    assert row.last_status_code == 200


async def test_500_then_200_follows_schedule_with_same_webhook_id(
    app: Any,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: Any,
    settings: Settings,
    receiver: Receiver,  # noqa: F811
) -> None:
    """Two 500s then 200: delivered on the third attempt, one webhook-id throughout."""
    receiver.behaviour = lambda req, n: (500, {}, b"busy") if n <= 2 else (200, {}, b"ok")
    await _subscribe(client, admin, receiver.url, ["check_request.submitted"])
    await _emit(sessionmaker)
    fast = settings.model_copy(update={"webhook_retry_schedule_seconds": FAST})
    await _pump(app, sessionmaker, fast)
    (row,) = await _deliveries(sessionmaker)
    assert row.status == "pending"
    assert row.attempts == 1
    assert row.last_status_code == 500
    await _pump(app, sessionmaker, fast, rounds=2)
    (row,) = await _deliveries(sessionmaker)
    assert row.status == "delivered"
    assert row.attempts == 3
    assert len(receiver.requests) == 3
    assert {r.headers["webhook-id"] for r in receiver.requests} == {row.webhook_id}


async def test_always_failing_is_dead_lettered_then_redelivered(
    app: Any,
    client: httpx.AsyncClient,
    make_headers: Callable[..., Awaitable[dict[str, str]]],
    two_agencies: tuple[str, str],
    sessionmaker: Any,
    settings: Settings,
    receiver: Receiver,  # noqa: F811
) -> None:
    """After the schedule runs out the delivery fails; the route lists it and sends it again."""
    receiver.behaviour = lambda req, n: (503, {}, b"down for maintenance")
    scjg = await make_headers("scheduler", "SCJG")
    yjgl = await make_headers("scheduler", "YJGL")
    await _subscribe(client, scjg, receiver.url, ["check_request.submitted"])
    await _emit(sessionmaker, agency="YJGL")  # not SCJG's: never delivered to its subscription
    await _emit(sessionmaker, agency="SCJG")
    fast = settings.model_copy(update={"webhook_retry_schedule_seconds": FAST})
    await _pump(app, sessionmaker, fast, rounds=6)
    assert len(receiver.requests) == 4  # 1 + 3 retries
    assert {r.json["data"]["n"] for r in receiver.requests} == {1}
    r = await client.get("/v1/webhook-deliveries", params={"status": "failed"}, headers=scjg)
    assert r.status_code == 200, r.text
    (dead,) = r.json()["items"]
    assert dead["attempts"] == 4
    assert dead["last_status_code"] == 503
    assert dead["last_response_excerpt"] == "down for maintenance"
    r = await client.get("/v1/webhook-deliveries", params={"status": "failed"}, headers=yjgl)
    assert r.json()["items"] == []
    r = await client.post(f"/v1/webhook-deliveries/{dead['id']}/redeliver", headers=yjgl)
    assert r.status_code == 404
    receiver.behaviour = lambda req, n: (204, {}, b"")
    r = await client.post(f"/v1/webhook-deliveries/{dead['id']}/redeliver", headers=scjg)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    await _pump(app, sessionmaker, fast)
    (row,) = await _deliveries(sessionmaker)
    assert row.status == "delivered"
    assert row.attempts == 1
    assert receiver.requests[-1].headers["webhook-id"] == dead["webhook_id"]


async def test_410_disables_and_retry_after_is_honoured(
    app: Any,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: Any,
    settings: Settings,
    receiver: Receiver,  # noqa: F811
) -> None:
    """429 with Retry-After: 120 sets the next attempt ~120 s out; 410 disables."""
    receiver.behaviour = lambda req, n: (429, {"Retry-After": "120"}, b"slow down")
    sub = await _subscribe(client, admin, receiver.url, ["check_request.submitted"])
    await _emit(sessionmaker)
    await _pump(app, sessionmaker, settings)
    async with sessionmaker() as session:
        wait = (
            await session.execute(
                text("SELECT extract(epoch FROM next_attempt_at - now()) FROM webhook_delivery")
            )
        ).scalar_one()
    assert 110 < wait <= 120
    async with sessionmaker() as session, session.begin():
        await session.execute(text("UPDATE webhook_delivery SET next_attempt_at = now()"))
    receiver.behaviour = lambda req, n: (410, {}, b"gone")
    await _pump(app, sessionmaker, settings)
    (row,) = await _deliveries(sessionmaker)
    assert row.status == "failed"
    assert row.last_status_code == 410
    r = await client.get(f"/v1/webhook-subscriptions/{sub['id']}", headers=admin)
    assert r.json()["status"] == "disabled"
    await _emit(sessionmaker, 1)  # aggregate 1 again: a new event, no new delivery
    await _pump(app, sessionmaker, settings)
    assert len(await _deliveries(sessionmaker)) == 1
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("soon") is None


async def test_forbidden_urls_refused_and_never_connected(
    app: Any,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: Any,
    settings: Settings,
    receiver: Receiver,  # noqa: F811
) -> None:
    """Metadata and unknown types are 422; with private targets off a delivery never connects."""
    for url in ("http://169.254.169.254/latest", "ftp://example.com/x", "http://[fe80::1]/"):
        r = await client.post(
            "/v1/webhook-subscriptions",
            json={"url": url, "event_types": ["check_request.submitted"]},
            headers=admin,
        )
        assert r.status_code == 422, (url, r.text)
        assert r.json()["errors"][0]["field"] == "url"
    r = await client.post(
        "/v1/webhook-subscriptions",
        json={"url": receiver.url, "event_types": ["no.such"]},
        headers=admin,
    )
    assert r.status_code == 422
    await _subscribe(client, admin, receiver.url, ["check_request.submitted"])
    await _emit(sessionmaker)
    strict = settings.model_copy(update={"allow_private_callback_urls": False})
    await _pump(app, sessionmaker, strict)
    assert receiver.connections == 0
    (row,) = await _deliveries(sessionmaker)
    assert row.status == "pending"
    assert "SSRF" in row.last_error
    assert row.last_status_code is None


async def test_subscription_listing_scoped_and_delete(
    client: httpx.AsyncClient,
    make_headers: Callable[..., Awaitable[dict[str, str]]],
    two_agencies: tuple[str, str],
    receiver: Receiver,  # noqa: F811
) -> None:
    """An agency sees and deletes only its subscriptions; its subscription is agency-scoped."""
    scjg = await make_headers("approver", "SCJG")
    yjgl = await make_headers("scheduler", "YJGL")
    sub = await _subscribe(client, scjg, receiver.url, ["check_request.approved"])
    assert sub["agency_code"] == "SCJG"
    r = await client.get("/v1/webhook-subscriptions", headers=yjgl)
    assert r.json()["items"] == []
    r = await client.delete(f"/v1/webhook-subscriptions/{sub['id']}", headers=yjgl)
    assert r.status_code == 404
    r = await client.delete(f"/v1/webhook-subscriptions/{sub['id']}", headers=scjg)
    assert r.status_code == 204
    r = await client.get("/v1/webhook-subscriptions", headers=scjg)
    assert r.json()["items"] == []
    r = await client.post(
        "/v1/webhook-subscriptions",
        json={"url": receiver.url, "event_types": ["check_request.approved"], "x": 1},
        headers=scjg,
    )
    assert r.status_code == 422
    assert json.loads(r.text)["status"] == 422
