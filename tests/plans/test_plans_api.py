"""Plan lifecycle and validation through the API (real PostgreSQL)."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.plans.helpers import MakeHeaders, create_plan, item, this_year, whole_year


async def test_lifecycle_commitment_seed_secret_and_409s(
    client: httpx.AsyncClient,
    two_agencies: tuple[str, str],
    make_headers: MakeHeaders,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    h = await make_headers("scheduler", "SCJG")
    plan = await create_plan(client, h, [item(["SCJG-001"], sampling={"fixed_count": 5})])
    assert plan["status"] == "draft"
    assert plan["agencies"] == ["SCJG"]
    assert plan["items"][0]["seed_commitment"] is None
    assert plan["items"][0]["sampling"] == {"mode": "fixed_total", "total": 5}
    pid = plan["id"]

    r = await client.post(f"/v1/plans/{pid}/publish", headers=h)
    assert r.status_code == 409
    r = await client.post(f"/v1/plans/{pid}/submit", headers={**h, "If-Match": '"7"'})
    assert r.status_code == 412
    r = await client.post(f"/v1/plans/{pid}/submit", headers=h)
    assert r.status_code == 200, r.text
    submitted = r.json()
    assert submitted["status"] == "submitted"
    commitment = submitted["items"][0]["seed_commitment"]
    assert len(commitment) == 64
    assert submitted["items"][0]["seed"] is None
    assert "seed" not in str(await client.get(f"/v1/plans/{pid}", headers=h)).lower() or (
        (await client.get(f"/v1/plans/{pid}", headers=h)).json()["items"][0]["seed"] is None
    )
    async with sessionmaker() as s:
        seed = (
            await s.execute(text("SELECT seed FROM plan_item WHERE plan_id = :p"), {"p": pid})
        ).scalar_one()
    assert hashlib.sha256(bytes.fromhex(seed)).hexdigest() == commitment
    r = await client.post(f"/v1/plans/{pid}/withdraw", headers=h)
    assert r.status_code == 409
    r = await client.post(f"/v1/plans/{pid}/submit", headers=h)
    assert r.status_code == 409

    async with sessionmaker() as s:
        types = list(
            (
                await s.execute(
                    text(
                        "SELECT type FROM event WHERE aggregate_type = 'plan' "
                        "AND aggregate_id = :p ORDER BY aggregate_seq"
                    ),
                    {"p": str(pid)},
                )
            ).scalars()
        )
        audits = (
            await s.execute(text("SELECT count(*) FROM audit_log WHERE object_type = 'plan'"))
        ).scalar_one()
    assert types == ["plan.created", "plan.submitted"]
    assert audits == 2


async def test_withdraw_a_draft(
    client: httpx.AsyncClient, two_agencies: tuple[str, str], make_headers: MakeHeaders
) -> None:
    h = await make_headers("scheduler", "SCJG")
    plan = await create_plan(client, h, [item(["SCJG-001"])])
    r = await client.post(f"/v1/plans/{plan['id']}/withdraw", headers=h)
    assert r.status_code == 200
    assert r.json()["status"] == "withdrawn"
    r = await client.post(f"/v1/plans/{plan['id']}/submit", headers=h)
    assert r.status_code == 409
    # default ratios come from the policy
    assert plan["items"][0]["sampling"]["mode"] == "ratio"
    assert plan["items"][0]["sampling"]["ratios"]["D"] in ("0.3", "0.30")


async def test_every_validation_problem_is_listed(
    client: httpx.AsyncClient, two_agencies: tuple[str, str], make_headers: MakeHeaders
) -> None:
    h = await make_headers("scheduler", "SCJG")
    y = this_year()
    body = {
        "year": y,
        "title": "bad",
        "items": [
            {
                "matters": ["YJGL-001", "NOPE-1"],
                "window": {"start": f"{y}-06-01", "end": f"{y}-05-01"},
                "sampling": {"ratios": {"A": 1.5, "B": -0.1}},
                "inspectors_per_check": 1,
            },
            {
                "matters": ["SCJG-001"],
                "window": {"start": f"{y - 1}-12-01", "end": f"{y + 1}-01-10"},
            },
        ],
    }
    r = await client.post("/v1/plans", json=body, headers=h)
    assert r.status_code == 422, r.text
    fields = {e["field"] for e in r.json()["errors"]}
    assert {
        "items.0.matters.0",
        "items.0.matters.1",
        "items.0.window",
        "items.0.sampling.ratios.A",
        "items.0.sampling.ratios.B",
        "items.0.inspectors_per_check",
        "items.1.window.start",
        "items.1.window.end",
    } <= fields
    other_agency = next(e for e in r.json()["errors"] if e["field"] == "items.0.matters.0")
    assert "YJGL" in other_agency["detail"]

    closed: dict[str, Any] = {"year": y - 1, "title": "old", "items": [item(["SCJG-001"])]}
    closed["items"][0]["window"] = {"start": f"{y - 1}-03-01", "end": f"{y - 1}-04-01"}
    r = await client.post("/v1/plans", json=closed, headers=h)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["year"]

    r = await client.post(
        "/v1/plans", json={**closed, "year": y, "surprise": 1, "items": []}, headers=h
    )
    assert r.status_code == 422


async def test_joint_plan_rules_and_scoping(
    client: httpx.AsyncClient, two_agencies: tuple[str, str], make_headers: MakeHeaders
) -> None:
    scjg = await make_headers("scheduler", "SCJG")
    yjgl = await make_headers("scheduler", "YJGL")
    await client.post(
        "/v1/agencies", json={"code": "ZJJ", "name": "住建局"}, headers=await make_headers("admin")
    )
    zjj = await make_headers("scheduler", "ZJJ")

    # a joint plan the caller is not part of
    r = await client.post(
        "/v1/plans",
        json={
            "year": this_year(),
            "title": "x",
            "agencies": ["SCJG", "YJGL"],
            "items": [item(["SCJG-001", "YJGL-001"])],
        },
        headers=zjj,
    )
    assert r.status_code == 403
    # a joint item must cover each agency
    r = await client.post(
        "/v1/plans",
        json={
            "year": this_year(),
            "title": "x",
            "agencies": ["SCJG", "YJGL"],
            "items": [item(["SCJG-001"])],
        },
        headers=scjg,
    )
    assert r.status_code == 422
    plan = await create_plan(
        client, scjg, [item(["SCJG-001", "YJGL-001"])], agencies=["SCJG", "YJGL"]
    )
    assert plan["joint"] is True
    assert plan["agency_code"] == "SCJG"
    # both agencies see it; a third does not
    assert (await client.get(f"/v1/plans/{plan['id']}", headers=yjgl)).status_code == 200
    assert (await client.get(f"/v1/plans/{plan['id']}", headers=zjj)).status_code == 404
    assert (await client.post(f"/v1/plans/{plan['id']}/submit", headers=zjj)).status_code == 404
    listed = (await client.get("/v1/plans", headers=zjj)).json()
    assert listed["items"] == []
    listed = (await client.get(f"/v1/plans?year={this_year()}", headers=yjgl)).json()
    assert [p["id"] for p in listed["items"]] == [plan["id"]]
    assert (await client.get("/v1/plans?agency=SCJG", headers=zjj)).status_code == 403
    approver = await make_headers("approver", "SCJG")
    r = await client.post(
        "/v1/plans",
        json={"year": this_year(), "title": "x", "items": [item(["SCJG-001"])]},
        headers=approver,
    )
    assert r.status_code == 403
    _ = whole_year
