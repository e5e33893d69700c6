"""Idempotency-Key on POST /v1/plans: replay, reuse with another body, scope, failure, in flight.

The same semantics as POST /v1/check-requests (tests/approvals/test_idempotency.py), through the
same kit.idempotency.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.auth.tokens import hash_token
from inspection_hub.kit import idempotency
from inspection_hub.kit.synth import make_uscc
from inspection_hub.plans.schemas import PlanCreate
from tests.approvals.conftest import request_body as check_request_body
from tests.conftest import TEST_PEPPER
from tests.plans.helpers import MakeHeaders, item, this_year

SM = async_sessionmaker[AsyncSession]


def plan_body(title: str = "2026年度双随机抽查计划", **extra: Any) -> dict[str, Any]:
    """A valid SCJG plan with one item over the whole year."""
    return {
        "year": this_year(),
        "title": title,
        "items": [item(["SCJG-001"], sampling={"fixed_count": 5})],
        **extra,
    }


async def _count(sm: SM, sql: str) -> int:
    async with sm() as s:
        return int((await s.execute(text(sql))).scalar_one())


async def _plans_audits_events(sm: SM) -> tuple[int, int, int]:
    return (
        await _count(sm, "SELECT count(*) FROM plan"),
        await _count(sm, "SELECT count(*) FROM audit_log WHERE action = 'plan.create'"),
        await _count(sm, "SELECT count(*) FROM event WHERE type = 'plan.created'"),
    )


async def test_same_key_same_body_replays_the_first_answer(
    client: httpx.AsyncClient, two_agencies: Any, make_headers: MakeHeaders, sessionmaker: SM
) -> None:
    headers = {**await make_headers("scheduler", "SCJG"), "Idempotency-Key": "plan-001"}
    body = plan_body()
    first = await client.post("/v1/plans", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    # same body, other key order: still the same request
    second = await client.post("/v1/plans", json=dict(reversed(body.items())), headers=headers)
    assert second.status_code == 201
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert await _plans_audits_events(sessionmaker) == (1, 1, 1)
    # the replayed plan is the stored one
    got = await client.get(f"/v1/plans/{first.json()['id']}", headers=headers)
    assert got.json()["title"] == body["title"]


async def test_same_key_other_body_is_422_and_creates_nothing(
    client: httpx.AsyncClient, two_agencies: Any, make_headers: MakeHeaders, sessionmaker: SM
) -> None:
    headers = {**await make_headers("scheduler", "SCJG"), "Idempotency-Key": "plan-002"}
    r = await client.post("/v1/plans", json=plan_body(), headers=headers)
    assert r.status_code == 201
    r = await client.post("/v1/plans", json=plan_body(title="另一个计划"), headers=headers)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/validation-error")
    assert r.json()["errors"][0]["field"] == "Idempotency-Key"
    assert await _plans_audits_events(sessionmaker) == (1, 1, 1)


async def test_a_key_is_one_request_whatever_the_route(
    client: httpx.AsyncClient, two_agencies: Any, make_headers: MakeHeaders, sessionmaker: SM
) -> None:
    """Keys are scoped per caller, not per route: reusing one on check requests is a 422."""
    headers = {**await make_headers("scheduler", "SCJG"), "Idempotency-Key": "shared"}
    assert (await client.post("/v1/plans", json=plan_body(), headers=headers)).status_code == 201
    other = check_request_body(make_uscc("320404", 12345))
    r = await client.post("/v1/check-requests", json=other, headers=headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "Idempotency-Key"
    assert await _count(sessionmaker, "SELECT count(*) FROM check_request") == 0


async def test_keys_are_scoped_per_caller(
    client: httpx.AsyncClient, two_agencies: Any, make_headers: MakeHeaders, sessionmaker: SM
) -> None:
    mine = await make_headers("scheduler", "SCJG")
    colleague = await make_headers("scheduler", "SCJG")
    admin = await make_headers("admin")
    body = plan_body(agencies=["SCJG"])  # an admin has no agency of their own to default to
    answers = [
        await client.post("/v1/plans", json=body, headers={**h, "Idempotency-Key": "k"})
        for h in (mine, colleague, admin)
    ]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert len({a.json()["id"] for a in answers}) == 3
    assert await _plans_audits_events(sessionmaker) == (3, 3, 3)


async def test_a_failed_request_releases_its_key(
    client: httpx.AsyncClient, two_agencies: Any, make_headers: MakeHeaders, sessionmaker: SM
) -> None:
    headers = {**await make_headers("scheduler", "SCJG"), "Idempotency-Key": "plan-003"}
    bad = plan_body(items=[item(["NOPE-1"])])
    r = await client.post("/v1/plans", json=bad, headers=headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "items.0.matters.0"
    foreign = plan_body(agencies=["YJGL"], items=[item(["YJGL-001"])])
    assert (await client.post("/v1/plans", json=foreign, headers=headers)).status_code == 403
    assert await _count(sessionmaker, "SELECT count(*) FROM idempotency_key") == 0
    good = await client.post("/v1/plans", json=plan_body(), headers=headers)
    assert good.status_code == 201
    assert "idempotent-replayed" not in good.headers
    assert await _plans_audits_events(sessionmaker) == (1, 1, 1)


async def test_a_malformed_key_is_422(
    client: httpx.AsyncClient, two_agencies: Any, make_headers: MakeHeaders, sessionmaker: SM
) -> None:
    headers = {**await make_headers("scheduler", "SCJG"), "Idempotency-Key": "x" * 201}
    r = await client.post("/v1/plans", json=plan_body(), headers=headers)
    assert r.status_code == 422
    assert await _count(sessionmaker, "SELECT count(*) FROM plan") == 0


async def test_key_in_flight_is_409_and_concurrent_duplicates_create_one_plan(
    client: httpx.AsyncClient, two_agencies: Any, make_headers: MakeHeaders, sessionmaker: SM
) -> None:
    scheduler = await make_headers("scheduler", "SCJG")
    body = plan_body()
    # A concurrent request holds the claim (committed, not yet answered).
    token_id = await _token_id_of(sessionmaker, scheduler["Authorization"].split()[1])
    fp = idempotency.fingerprint(
        "POST", "/v1/plans", PlanCreate.model_validate(body).model_dump(mode="json")
    )
    claim = await idempotency.claim(
        sessionmaker, scope=f"t:{token_id}", key="plan-004", fingerprint=fp
    )
    assert claim.replay is None
    r = await client.post(
        "/v1/plans", json=body, headers={**scheduler, "Idempotency-Key": "plan-004"}
    )
    assert r.status_code == 409
    assert r.json()["type"].endswith("/conflict")
    assert await _count(sessionmaker, "SELECT count(*) FROM plan") == 0
    # Truly concurrent duplicates: exactly one is created, the others replay or see 409.
    headers = {**scheduler, "Idempotency-Key": "plan-005"}
    answers = await asyncio.gather(
        *(client.post("/v1/plans", json=body, headers=headers) for _ in range(8))
    )
    codes = sorted(a.status_code for a in answers)
    assert set(codes) <= {201, 409}
    assert codes.count(201) >= 1
    assert len({a.json()["id"] for a in answers if a.status_code == 201}) == 1
    assert await _plans_audits_events(sessionmaker) == (1, 1, 1)


async def _token_id_of(sm: SM, token: str) -> int:
    async with sm() as s:
        return int(
            (
                await s.execute(
                    text("SELECT id FROM api_token WHERE token_hash = :h"),
                    {"h": hash_token(token, TEST_PEPPER)},
                )
            ).scalar_one()
        )
