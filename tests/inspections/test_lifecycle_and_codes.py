"""Inspection lifecycle, inspection codes at the door, enterprise view and public disclosure."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.config import Settings
from inspection_hub.inspections.codes import CodeKeyring
from inspection_hub.inspections.service import keyring_for
from inspection_hub.kit.timeutil import local_today
from tests.plans.helpers import (
    MakeHeaders,
    add_inspectors,
    create_plan,
    import_enterprises,
    item,
    submit_and_draw,
    this_year,
)


async def _drawn(
    client: httpx.AsyncClient, admin: dict[str, str], make_headers: MakeHeaders, n: int = 4
) -> tuple[dict[str, str], dict[str, Any], list[dict[str, Any]], list[int]]:
    await import_enterprises(client, admin, 60)
    ids = await add_inspectors(client, admin, "SCJG", 4)
    h = await make_headers("scheduler", "SCJG")
    plan = await create_plan(client, h, [item(["SCJG-001"], sampling={"fixed_count": n})])
    await submit_and_draw(client, h, plan["id"])
    items = (await client.get(f"/v1/inspections?plan_id={plan['id']}", headers=h)).json()["items"]
    return h, plan, items, ids


async def _events(s: AsyncSession, kind: str) -> list[dict[str, Any]]:
    rows = await s.execute(
        text("SELECT payload FROM event WHERE type = :t ORDER BY id"), {"t": kind}
    )
    return [dict(r[0]) for r in rows]


async def test_lifecycle_409_412_and_certificates(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    two_agencies: tuple[str, str],
    make_headers: MakeHeaders,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    h, plan, items, ids = await _drawn(client, admin, make_headers)
    first, second = items[0], items[1]
    iid = first["id"]
    r = await client.post(f"/v1/inspections/{iid}/start", headers={**h, "If-Match": '"9"'})
    assert r.status_code == 412
    r = await client.post(f"/v1/inspections/{iid}/start", headers={**h, "If-Match": '"1"'})
    assert r.status_code == 200
    assert r.json()["status"] == "in_progress"
    assert (await client.post(f"/v1/inspections/{iid}/start", headers=h)).status_code == 409
    assert (await client.post(f"/v1/inspections/{iid}/cancel", headers=h)).status_code == 409

    # a lapsed certificate on the visit date, and fewer than two present
    lapsed = (
        await client.post(
            "/v1/agencies/SCJG/inspectors",
            json={
                "name": "过期检查员",
                "certificate_no": "SCJG-LAPSED",
                "certificate_valid_until": (local_today() - timedelta(days=3)).isoformat(),
            },
            headers=admin,
        )
    ).json()["id"]
    body = {
        "visit_date": local_today().isoformat(),
        "inspectors_present": [ids[0], lapsed],
        "outcome": "no_issue",
    }
    r = await client.post(f"/v1/inspections/{iid}/complete", json=body, headers=h)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["inspectors_present.1"]
    assert "SCJG-LAPSED" in r.json()["errors"][0]["detail"]
    r = await client.post(
        f"/v1/inspections/{iid}/complete", json={**body, "inspectors_present": [ids[0]]}, headers=h
    )
    assert r.status_code == 422
    r = await client.post(
        f"/v1/inspections/{iid}/complete",
        json={**body, "inspectors_present": [ids[0], ids[1]], "outcome": "penalized"},
        headers=h,
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "completed"
    assert done["outcome"] == "penalized"
    assert {p["id"] for p in done["inspectors"] if p["present"]} == {ids[0], ids[1]}
    assert (
        await client.post(f"/v1/inspections/{iid}/complete", json=body, headers=h)
    ).status_code == 409

    r = await client.post(
        f"/v1/inspections/{second['id']}/cancel", json={"reason": "企业已注销"}, headers=h
    )
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"

    # scoping: another agency's scheduler sees nothing and may touch nothing
    other = await make_headers("scheduler", "YJGL")
    assert (await client.get(f"/v1/inspections/{iid}", headers=other)).status_code == 404
    # an id no bigint can hold is simply not there (the driver would refuse to send it)
    huge = await client.get(f"/v1/inspections/{2**63}", headers=h)
    assert huge.status_code == 404, huge.text
    assert huge.headers["content-type"].startswith("application/problem+json")
    assert (
        await client.post(f"/v1/inspections/{items[2]['id']}/start", headers=other)
    ).status_code == 404
    assert (await client.get("/v1/inspections", headers=other)).json()["items"] == []
    assert (await client.get("/v1/inspections?agency=SCJG", headers=other)).status_code == 403

    async with sessionmaker() as s:
        completed = await _events(s, "inspection.completed")
        assert len(completed) == 1
        p = completed[0]
        assert p["enterprise"] == first["enterprise_uscc"]
        assert p["agency"] == "SCJG"
        assert p["agencies"] == ["SCJG"]
        assert p["kind"] == "planned"
        assert p["visit_date"] == local_today().isoformat()
        assert p["inspectors_present"] == [ids[0], ids[1]]
        assert p["outcome"] == "penalized"
        assert p["plan_id"] == plan["id"]
        assert "check_request_id" in p
        assert len(await _events(s, "inspection.cancelled")) == 1
        assert len(await _events(s, "inspection.started")) == 1

    # enterprise view with count and cap
    r = await client.get(f"/v1/enterprises/{first['enterprise_uscc']}/inspections", headers=other)
    view = r.json()
    assert view["count"] == 1
    assert view["year"] == this_year()
    assert view["cap"] == {"A": 1, "B": 2, "C": 3, "D": 6}[view["risk_class"]]
    r = await client.get(f"/v1/enterprises/{second['enterprise_uscc']}/inspections", headers=h)
    assert r.json()["count"] == 0
    assert len(r.json()["items"]) == 1

    # public disclosure: nothing until published, then only completed ones, no private text
    assert (await client.get("/public/v1/inspections")).json()["items"] == []
    assert (await client.post(f"/v1/plans/{plan['id']}/publish", headers=h)).status_code == 200
    pub = (await client.get(f"/public/v1/inspections?year={this_year()}&agency=SCJG")).json()
    assert [i["inspection_id"] for i in pub["items"]] == [iid]
    row = pub["items"][0]
    assert row["outcome"] == "penalized"
    assert row["enterprise_name"]
    assert "outcome_text" not in row
    assert "inspectors" not in row


async def test_codes_valid_forged_expired_cancelled_and_scan(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    two_agencies: tuple[str, str],
    make_headers: MakeHeaders,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    h, _plan, items, _ids = await _drawn(client, admin, make_headers)
    code = items[0]["code"]
    r = await client.get(f"/public/v1/inspection-codes/{code}")
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["agency_name"] == "区市场监管局"
    assert shown["status"] == "scheduled"
    assert shown["matters"][0]["code"] == "SCJG-001"
    assert len(shown["inspectors"]) == 2
    assert all(p["certificate_no"].startswith("SCJG-") for p in shown["inspectors"])

    png = await client.get(f"/v1/inspections/{items[0]['id']}/code.png", headers=h)
    assert png.status_code == 200
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    svg = await client.get(f"/v1/inspections/{items[0]['id']}/code.svg", headers=h)
    assert svg.status_code == 200
    assert "<svg" in svg.text

    # scan: first scan marks the start, the second changes nothing
    r = await client.post(f"/public/v1/inspection-codes/{code}/scan")
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["first_scan"] is True
    assert first["status"] == "in_progress"
    r = await client.post(f"/public/v1/inspection-codes/{code}/scan")
    again = r.json()
    assert again["first_scan"] is False
    assert again["started_at"] == first["started_at"]
    assert again["code_scanned_at"] == first["code_scanned_at"]

    # forged: a code signed by another key; and a tampered signature
    stranger = CodeKeyring.generate().issue(
        inspection_id=items[1]["id"],
        agency_code="SCJG",
        uscc=items[1]["enterprise_uscc"],
        window_start=date(this_year(), 1, 1),
        window_end=date(this_year(), 12, 31),
    )
    r = await client.get(f"/public/v1/inspection-codes/{stranger}")
    assert r.status_code == 404
    assert "检查码无效" in r.json()["detail"]
    payload, sig = items[1]["code"].split(".")
    flipped = payload + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
    r = await client.get(f"/public/v1/inspection-codes/{flipped}")
    assert r.status_code == 404
    assert (await client.get("/public/v1/inspection-codes/not-a-code")).status_code == 404

    # expired: a genuine code whose window ended long ago
    ring = keyring_for(settings.data_dir)
    old = ring.issue(
        inspection_id=items[1]["id"],
        agency_code="SCJG",
        uscc=items[1]["enterprise_uscc"],
        window_start=date(this_year() - 2, 1, 1),
        window_end=date(this_year() - 2, 3, 1),
    )
    r = await client.get(f"/public/v1/inspection-codes/{old}")
    assert r.status_code == 410
    assert "过期" in r.json()["detail"]

    # cancelled
    await client.post(f"/v1/inspections/{items[2]['id']}/cancel", headers=h)
    r = await client.get(f"/public/v1/inspection-codes/{items[2]['code']}")
    assert r.status_code == 410
    assert "已取消" in r.json()["detail"]
    r = await client.post(f"/public/v1/inspection-codes/{items[2]['code']}/scan")
    assert r.status_code == 410

    async with sessionmaker() as s:
        refused = [e["reason"] for e in await _events(s, "inspection_code.refused")]
        scanned = await _events(s, "inspection.code_scanned")
    # the malformed "not-a-code" writes no event
    assert sorted(refused) == ["cancelled", "cancelled", "expired", "forged", "forged"]
    assert len(scanned) == 1

    jwks = (await client.get("/public/v1/inspection-code-keys")).json()
    offline = CodeKeyring.from_jwks(jwks)
    assert offline.verify(code, local_today()).inspection_id == items[0]["id"]
