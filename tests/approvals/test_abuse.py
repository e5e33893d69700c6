"""Bad input and abuse of check requests: each refused with the right status and fields."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.auth.principal import Role
from inspection_hub.auth.service import create_token, get_or_create_user
from inspection_hub.kit.synth import make_uscc
from inspection_hub.kit.timeutil import local_today
from tests.approvals.conftest import World, request_body
from tests.conftest import TEST_PEPPER


def fields(r: httpx.Response) -> set[str]:
    assert r.status_code == 422, r.text
    return {e["field"] for e in r.json()["errors"]}


async def post(
    client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    return await client.post("/v1/check-requests", json=body, headers=headers)


async def test_unknown_enterprise_is_422(client: httpx.AsyncClient, world: World) -> None:
    unknown = make_uscc("320404", 999_999)
    r = await post(client, request_body(unknown), world.scheduler)
    assert fields(r) == {"enterprise"}
    assert "not registered" in r.json()["errors"][0]["detail"]
    r = await post(client, request_body("NOT-A-USCC"), world.scheduler)
    assert fields(r) == {"enterprise"}


async def test_unknown_matter_and_other_agencys_matter(
    client: httpx.AsyncClient, world: World
) -> None:
    r = await post(
        client,
        request_body(world.usccs[0], matters=["SCJG-001", "NOPE-9", "YJGL-001"]),
        world.scheduler,
    )
    errors = {e["field"]: e["detail"] for e in r.json()["errors"]}
    assert r.status_code == 422
    assert errors == {
        "matters.1": "unknown matter NOPE-9",
        "matters.2": "matter YJGL-001 belongs to agency YJGL, not SCJG",
    }
    r = await post(
        client, request_body(world.usccs[0], matters=["SCJG-001", "SCJG-001"]), world.scheduler
    )
    assert fields(r) == {"matters.1"}


async def test_window_past_reversed_too_long_all_reported(
    client: httpx.AsyncClient, world: World
) -> None:
    today = local_today()
    past = {"start": (today - timedelta(days=1)).isoformat(), "end": today.isoformat()}
    r = await post(client, request_body(world.usccs[0], window=past), world.scheduler)
    assert fields(r) == {"window.start"}
    reversed_ = {
        "start": (today + timedelta(days=5)).isoformat(),
        "end": (today + timedelta(days=4)).isoformat(),
    }
    r = await post(client, request_body(world.usccs[0], window=reversed_), world.scheduler)
    assert fields(r) == {"window.end"}
    too_long = {
        "start": (today + timedelta(days=1)).isoformat(),
        "end": (today + timedelta(days=31)).isoformat(),
    }
    r = await post(client, request_body(world.usccs[0], window=too_long), world.scheduler)
    assert fields(r) == {"window.end"}
    assert "31 days; at most 30" in r.json()["errors"][0]["detail"]
    exactly = {
        "start": (today + timedelta(days=1)).isoformat(),
        "end": (today + timedelta(days=30)).isoformat(),
    }
    r = await post(client, request_body(world.usccs[0], window=exactly), world.scheduler)
    assert r.status_code == 201
    # every bad field at once
    body = request_body(
        make_uscc("320404", 999_998), window=past, matters=["NOPE-1"], basis="other", reason="短"
    )
    r = await post(client, body, world.scheduler)
    assert fields(r) == {"window.start", "matters.0", "enterprise", "reason"}


async def test_other_basis_needs_substantial_reason(
    client: httpx.AsyncClient, world: World
) -> None:
    r = await post(
        client, request_body(world.usccs[0], basis="other", reason="需要检查"), world.scheduler
    )
    assert fields(r) == {"reason"}
    reason = "上级交办之外的其他情形：区政府专题会议纪要要求开展专项核查"
    assert len(reason) >= 20
    r = await post(
        client, request_body(world.usccs[0], basis="other", reason=reason), world.scheduler
    )
    assert r.status_code == 201


async def test_emergency_needs_incident_or_complaint(
    client: httpx.AsyncClient, world: World
) -> None:
    r = await post(
        client, request_body(world.usccs[0], basis="tip_off", emergency=True), world.scheduler
    )
    assert fields(r) == {"emergency"}


@pytest.mark.parametrize(
    "extra", [{"status": "approved"}, {"approver": 1}, {"version": 3}, {"decided_by": 2}]
)
async def test_server_owned_fields_in_body_are_422(
    client: httpx.AsyncClient, world: World, extra: dict[str, Any]
) -> None:
    r = await post(client, request_body(world.usccs[0], **extra), world.scheduler)
    assert fields(r) == set(extra)


async def test_decision_body_forbids_extra_fields(client: httpx.AsyncClient, world: World) -> None:
    r = await post(client, request_body(world.usccs[0]), world.scheduler)
    rid = r.json()["id"]
    r = await client.post(
        f"/v1/check-requests/{rid}/approve",
        json={"comment": "ok", "status": "rejected"},
        headers=world.approver,
    )
    assert fields(r) == {"status"}


async def test_scheduler_filing_for_another_agency_is_403(
    client: httpx.AsyncClient, world: World
) -> None:
    body = request_body(world.usccs[0], agency="YJGL", matters=["YJGL-001"])
    r = await post(client, body, world.scheduler)
    assert r.status_code == 403
    r = await post(client, request_body(world.usccs[0]), world.approver)  # approvers do not file
    assert r.status_code == 403


async def test_approver_of_another_agency_is_403(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    r = await post(client, request_body(world.usccs[0]), world.scheduler)
    rid = r.json()["id"]
    for action, body in (("approve", {}), ("reject", {"comment": "不同意"})):
        r = await client.post(
            f"/v1/check-requests/{rid}/{action}", json=body, headers=world.other_approver
        )
        assert r.status_code == 403
    r = await client.post(f"/v1/check-requests/{rid}/approve", headers=world.supervisor)
    assert r.status_code == 403
    r = await client.post(f"/v1/check-requests/{rid}/withdraw", headers=world.other_scheduler)
    assert r.status_code == 403
    async with sessionmaker() as s:
        assert (await s.execute(text("SELECT status FROM check_request"))).scalar_one() == "pending"


async def test_self_approval_is_403_also_with_a_second_token(
    client: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # One person (one username) acting as the requester: the check compares user ids.
    async with sessionmaker() as s, s.begin():
        user = await get_or_create_user(
            s, username="zhang.san", role=Role.scheduler, agency_code="SCJG"
        )
        first, _ = await create_token(s, user=user, pepper=TEST_PEPPER)
        second, _ = await create_token(s, user=user, pepper=TEST_PEPPER)
        uid = user.id
    r = await post(client, request_body(world.usccs[0]), {"Authorization": f"Bearer {first}"})
    rid = r.json()["id"]
    # The same person promoted to approver with a second token still may not decide it.
    async with sessionmaker() as s, s.begin():
        await s.execute(text("UPDATE user_account SET role = 'approver' WHERE id = :i"), {"i": uid})
    for action, body in (("approve", {}), ("reject", {"comment": "自己驳回"})):
        r = await client.post(
            f"/v1/check-requests/{rid}/{action}",
            json=body,
            headers={"Authorization": f"Bearer {second}"},
        )
        assert r.status_code == 403, r.text
        assert "filed themselves" in r.json()["detail"]


async def test_deciding_a_final_request_is_409_naming_who_and_when(
    client: httpx.AsyncClient, world: World, make_headers: Callable[..., Awaitable[dict[str, str]]]
) -> None:
    r = await post(client, request_body(world.usccs[0]), world.scheduler)
    rid = r.json()["id"]
    r = await client.post(
        f"/v1/check-requests/{rid}/reject", json={"comment": "否"}, headers=world.approver
    )
    assert r.status_code == 200
    second_approver = await make_headers("approver", "SCJG", name="li.si")
    r = await client.post(f"/v1/check-requests/{rid}/approve", headers=second_approver)
    assert r.status_code == 409
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["current_status"] == "rejected"
    assert "already rejected by" in problem["detail"]
    assert problem["decided_at"]
    r = await client.post(f"/v1/check-requests/{rid}/withdraw", headers=world.scheduler)
    assert r.status_code == 409
