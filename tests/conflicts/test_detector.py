"""Integration: the conflict detector, resolving, joint inspections and the burden ledger."""

from __future__ import annotations

import asyncio
from datetime import date

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.config import Settings
from inspection_hub.events.registry import discover_handlers
from tests.conflicts.helpers import (
    Headers,
    MakeHeaders,
    add_agency,
    add_enterprise,
    conflicts,
    events_of,
    pending_events,
    run_detector,
    schedule,
)

SM = async_sessionmaker[AsyncSession]


@pytest.fixture
async def three_agencies(
    client: httpx.AsyncClient, admin: Headers, two_agencies: tuple[str, str]
) -> tuple[str, str, str]:
    """SCJG (food_safety), YJGL (work_safety) and XFJY (fire_safety)."""
    await add_agency(client, admin, "XFJY", [("XFJY-001", "fire_safety")])
    return "SCJG", "YJGL", "XFJY"


async def test_two_agencies_same_fortnight_one_mergeable_then_grows(
    client: httpx.AsyncClient,
    admin: Headers,
    three_agencies: tuple[str, str, str],
    sessionmaker: SM,
    settings: Settings,
) -> None:
    uscc = await add_enterprise(client, admin, 1, "D")
    a = await schedule(
        sessionmaker, settings, uscc, "SCJG", ["SCJG-001"], date(2026, 12, 1), date(2026, 12, 5)
    )
    b = await schedule(
        sessionmaker, settings, uscc, "YJGL", ["YJGL-001"], date(2026, 12, 8), date(2026, 12, 12)
    )
    last = await run_detector(sessionmaker)
    rows = await conflicts(sessionmaker, uscc)
    assert [(r.kind, sorted(r.inspection_ids)) for r in rows] == [("mergeable", [a, b])]
    first = rows[0]
    assert sorted(first.agency_codes) == ["SCJG", "YJGL"]
    assert first.status == "open"
    assert first.policy_version == "2026.1"
    assert first.lead_agency in ("SCJG", "YJGL")
    detected = await events_of(sessionmaker, "conflict.detected")
    assert len(detected) == 1
    assert sorted(detected[0].agency_codes) == ["SCJG", "YJGL"]

    c = await schedule(
        sessionmaker, settings, uscc, "XFJY", ["XFJY-001"], date(2026, 12, 10), date(2026, 12, 10)
    )
    await run_detector(sessionmaker, last)
    rows = await conflicts(sessionmaker, uscc)
    assert len(rows) == 1
    assert rows[0].id == first.id
    assert sorted(rows[0].inspection_ids) == [a, b, c]
    assert sorted(rows[0].agency_codes) == ["SCJG", "XFJY", "YJGL"]
    assert rows[0].version == 2
    updated = await events_of(sessionmaker, "conflict.updated")
    assert len(updated) == 1
    assert "XFJY" in updated[0].agency_codes
    assert len(await events_of(sessionmaker, "conflict.detected")) == 1

    # Replaying every event twice records nothing new.
    for _ in range(2):
        await run_detector(sessionmaker, 0)
    again = await conflicts(sessionmaker, uscc)
    assert [(r.id, sorted(r.inspection_ids), r.version) for r in again] == [
        (first.id, [a, b, c], 2)
    ]
    assert len(await events_of(sessionmaker, "conflict.detected")) == 1


async def test_joint_inspection_flow_merges_and_settles(
    client: httpx.AsyncClient,
    admin: Headers,
    make_headers: MakeHeaders,
    three_agencies: tuple[str, str, str],
    sessionmaker: SM,
    settings: Settings,
) -> None:
    uscc = await add_enterprise(client, admin, 2, "D")
    ids = [
        await schedule(
            sessionmaker,
            settings,
            uscc,
            agency,
            [agency + "-001"],
            date(2026, 12, 1),
            date(2026, 12, 14),
        )
        for agency in ("SCJG", "YJGL", "XFJY")
    ]
    last = await run_detector(sessionmaker)
    (finding,) = await conflicts(sessionmaker, uscc)
    assert finding.kind == "mergeable"

    scheduler = await make_headers("scheduler", "SCJG")
    body = {"inspections": ids, "lead_agency": "SCJG", "date": "2026-12-08"}
    r = await client.post("/v1/joint-inspections", json=body, headers=scheduler)
    assert r.status_code == 201, r.text
    proposal = r.json()
    assert proposal["status"] == "proposed"
    assert proposal["consents"] == []
    pid = proposal["id"]

    # Another proposal over the same inspections is refused while this one is open.
    r = await client.post("/v1/joint-inspections", json=body, headers=scheduler)
    assert r.status_code == 409

    # An outsider agency cannot see or consent.
    await add_agency(client, admin, "ZJJ", [])
    outsider = await make_headers("approver", "ZJJ")
    assert (await client.get(f"/v1/joint-inspections/{pid}", headers=outsider)).status_code == 403
    r = await client.post(f"/v1/joint-inspections/{pid}/consent", headers=outsider)
    assert r.status_code == 403

    for agency in ("SCJG", "YJGL"):
        approver = await make_headers("approver", agency)
        r = await client.post(f"/v1/joint-inspections/{pid}/consent", headers=approver)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "proposed"
        r = await client.post(f"/v1/joint-inspections/{pid}/consent", headers=approver)
        assert r.status_code == 409  # one consent per agency
    approver = await make_headers("approver", "XFJY")
    r = await client.post(f"/v1/joint-inspections/{pid}/consent", headers=approver)
    assert r.status_code == 200, r.text
    accepted = r.json()
    assert accepted["status"] == "accepted"
    joint_id = accepted["joint_inspection_id"]
    assert joint_id is not None

    async with sessionmaker() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT id, kind, status, merged_into_id, agency_code, code, window_start, "
                    "window_end FROM inspection WHERE enterprise_uscc = :u ORDER BY id"
                ),
                {"u": uscc},
            )
        ).all()
        matters = (
            (
                await session.execute(
                    text(
                        "SELECT matter_code FROM inspection_matter WHERE inspection_id = :j "
                        "ORDER BY matter_code"
                    ),
                    {"j": joint_id},
                )
            )
            .scalars()
            .all()
        )
    originals = [r for r in rows if r.id in ids]
    assert {(r.status, r.merged_into_id) for r in originals} == {("merged", joint_id)}
    (joint,) = [r for r in rows if r.id == joint_id]
    assert (joint.kind, joint.status, joint.agency_code) == ("joint", "scheduled", "SCJG")
    assert joint.window_start == joint.window_end == date(2026, 12, 8)
    assert joint.code  # one inspection code for the one visit
    assert list(matters) == ["SCJG-001", "XFJY-001", "YJGL-001"]
    (settled,) = await conflicts(sessionmaker, uscc)
    assert (settled.status, settled.resolution) == ("resolved", "merged")
    assert len(await events_of(sessionmaker, "inspection.merged")) == 3
    assert len(await events_of(sessionmaker, "joint_inspection.accepted")) == 1

    # The joint visit itself raises nothing new (its originals are merged).
    await run_detector(sessionmaker, last)
    assert [r.status for r in await conflicts(sessionmaker, uscc)] == ["resolved"]

    # Nothing is left to merge twice.
    r = await client.post(f"/v1/joint-inspections/{pid}/consent", headers=approver)
    assert r.status_code == 409


async def test_joint_proposal_rules_and_supervisor_accept(
    client: httpx.AsyncClient,
    admin: Headers,
    make_headers: MakeHeaders,
    three_agencies: tuple[str, str, str],
    sessionmaker: SM,
    settings: Settings,
) -> None:
    uscc = await add_enterprise(client, admin, 3, "D")
    other = await add_enterprise(client, admin, 4, "D")
    a = await schedule(
        sessionmaker, settings, uscc, "SCJG", ["SCJG-001"], date(2026, 12, 1), date(2026, 12, 3)
    )
    a2 = await schedule(
        sessionmaker, settings, uscc, "SCJG", ["SCJG-001"], date(2026, 12, 2), date(2026, 12, 3)
    )
    b = await schedule(
        sessionmaker, settings, uscc, "YJGL", ["YJGL-001"], date(2026, 12, 2), date(2026, 12, 4)
    )
    x = await schedule(
        sessionmaker, settings, other, "XFJY", ["XFJY-001"], date(2026, 12, 2), date(2026, 12, 4)
    )
    supervisor = await make_headers("supervisor")
    post = client.post
    r = await post(
        "/v1/joint-inspections",
        json={"inspections": [a, a2], "lead_agency": "SCJG", "date": "2026-12-02"},
        headers=supervisor,
    )
    assert r.status_code == 422  # one agency twice
    r = await post(
        "/v1/joint-inspections",
        json={"inspections": [a, x], "lead_agency": "SCJG", "date": "2026-12-02"},
        headers=supervisor,
    )
    assert r.status_code == 422  # two enterprises
    r = await post(
        "/v1/joint-inspections",
        json={"inspections": [a, b], "lead_agency": "XFJY", "date": "2026-12-02"},
        headers=supervisor,
    )
    assert r.status_code == 422  # lead not involved
    outsider = await make_headers("scheduler", "XFJY")
    r = await post(
        "/v1/joint-inspections",
        json={"inspections": [a, b], "lead_agency": "SCJG", "date": "2026-12-02"},
        headers=outsider,
    )
    assert r.status_code == 403
    r = await post(
        "/v1/joint-inspections",
        json={"inspections": [a, b], "lead_agency": "YJGL", "date": "2026-12-02"},
        headers=supervisor,
    )
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    scheduler = await make_headers("scheduler", "SCJG")
    assert (await post(f"/v1/joint-inspections/{pid}/accept", headers=scheduler)).status_code == 403
    r = await post(
        f"/v1/joint-inspections/{pid}/accept", json={"note": "区局统筹"}, headers=supervisor
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "accepted"
    assert [c["agency"] for c in body["consents"]] == ["SCJG", "YJGL"]
    r = await client.get(f"/v1/joint-inspections/{pid}", headers=scheduler)
    assert r.status_code == 200
    assert r.json()["joint_inspection_id"] == body["joint_inspection_id"]


async def test_concurrent_detection_records_one_finding(
    client: httpx.AsyncClient,
    admin: Headers,
    two_agencies: tuple[str, str],
    sessionmaker: SM,
    settings: Settings,
) -> None:
    uscc = await add_enterprise(client, admin, 5, "D")
    await schedule(
        sessionmaker, settings, uscc, "SCJG", ["SCJG-001"], date(2026, 12, 1), date(2026, 12, 5)
    )
    await schedule(
        sessionmaker, settings, uscc, "YJGL", ["YJGL-001"], date(2026, 12, 2), date(2026, 12, 6)
    )
    events = await pending_events(sessionmaker)
    assert [e.type for e in events] == ["inspection.scheduled", "inspection.scheduled"]
    consumer = discover_handlers()["conflict_detector"]

    async def deliver(index: int) -> None:
        async with sessionmaker() as session, session.begin():
            await consumer.fn(session, events[index % 2])

    await asyncio.gather(*(deliver(i) for i in range(6)))
    rows = await conflicts(sessionmaker, uscc)
    assert [r.kind for r in rows] == ["mergeable"]
    assert len(await events_of(sessionmaker, "conflict.detected")) == 1


async def test_cap_exceeded_follows_risk_class_change(
    client: httpx.AsyncClient,
    admin: Headers,
    three_agencies: tuple[str, str, str],
    sessionmaker: SM,
    settings: Settings,
) -> None:
    uscc = await add_enterprise(client, admin, 6, "D")
    async with sessionmaker() as session, session.begin():
        # D (cap 6) until the end of June, then A (cap 1).
        await session.execute(
            text(
                "INSERT INTO enterprise_risk_class (enterprise_uscc, valid_from, risk_class) "
                "VALUES (:u, '2026-07-01', 'A')"
            ),
            {"u": uscc},
        )
    march = await schedule(
        sessionmaker, settings, uscc, "SCJG", ["SCJG-001"], date(2026, 3, 2), date(2026, 3, 6)
    )
    await run_detector(sessionmaker)
    assert await conflicts(sessionmaker, uscc) == []  # 1 <= 6
    last = await run_detector(sessionmaker)
    august = await schedule(
        sessionmaker, settings, uscc, "YJGL", ["YJGL-001"], date(2026, 8, 3), date(2026, 8, 7)
    )
    last = await run_detector(sessionmaker, last)
    complaint = await schedule(
        sessionmaker,
        settings,
        uscc,
        "XFJY",
        ["XFJY-001"],
        date(2026, 10, 12),
        date(2026, 10, 12),
        basis="complaint",
        kind="unplanned",
    )
    await run_detector(sessionmaker, last)
    rows = {
        r.inspection_ids[0]: r
        for r in await conflicts(sessionmaker, uscc)
        if r.kind == "cap_exceeded"
    }
    assert sorted(rows) == [august, complaint]
    assert rows[august].detail["cap"] == 1
    assert rows[august].detail["risk_class"] == "A"
    assert rows[august].detail["count"] == 2
    assert rows[august].detail["blocking"] is True
    assert rows[complaint].detail["count"] == 3
    assert rows[complaint].detail["blocking"] is False  # counted, flagged, not blocked
    assert sorted(rows[august].agency_codes) == ["SCJG", "YJGL"]
    assert march not in rows

    # The ledger shows the same year.
    official = await make_headers_for(client, admin)
    r = await client.get(f"/v1/enterprises/{uscc}/burden", params={"year": 2026}, headers=official)
    assert r.status_code == 200, r.text
    burden = r.json()
    assert burden["counted"] == 3
    assert burden["scheduled"] == 3
    assert burden["completed"] == 0
    assert [a["agency"] for a in burden["by_agency"]] == ["SCJG", "XFJY", "YJGL"]
    r = await client.get(f"/v1/enterprises/{uscc}/burden", params={"year": 2025}, headers=official)
    assert r.json()["counted"] == 0
    assert r.json()["cap"] == 6  # class D all of 2025
    assert r.json()["remaining"] == 6


async def make_headers_for(client: httpx.AsyncClient, admin: Headers) -> Headers:
    """Any official (the admin) may read the burden ledger."""
    return admin


async def test_repeat_across_agencies(
    client: httpx.AsyncClient,
    admin: Headers,
    two_agencies: tuple[str, str],
    sessionmaker: SM,
    settings: Settings,
) -> None:
    await add_agency(client, admin, "YJGL", [("YJGL-002", "food_safety")])
    uscc = await add_enterprise(client, admin, 7, "D")
    first = await schedule(
        sessionmaker, settings, uscc, "SCJG", ["SCJG-001"], date(2026, 2, 2), date(2026, 2, 6)
    )
    second = await schedule(
        sessionmaker, settings, uscc, "YJGL", ["YJGL-002"], date(2026, 6, 1), date(2026, 6, 5)
    )
    far = await schedule(
        sessionmaker, settings, uscc, "SCJG", ["SCJG-001"], date(2027, 3, 1), date(2027, 3, 5)
    )
    await run_detector(sessionmaker)
    rows = [r for r in await conflicts(sessionmaker, uscc) if r.kind == "repeat"]
    assert [sorted(r.inspection_ids) for r in rows] == [sorted([first, second])]
    assert sorted(rows[0].agency_codes) == ["SCJG", "YJGL"]
    assert rows[0].detail["categories"] == ["food_safety"]
    assert rows[0].detail["same_agency"] is False
    assert far not in rows[0].inspection_ids  # 268 days after June: beyond 180


async def _scoping_world(
    client: httpx.AsyncClient, admin: Headers, sessionmaker: SM, settings: Settings
) -> tuple[int, int]:
    """A mergeable SCJG+YJGL finding and a repeat finding of XFJY alone; their ids."""
    u1 = await add_enterprise(client, admin, 8, "D")
    u2 = await add_enterprise(client, admin, 9, "D")
    await schedule(
        sessionmaker, settings, u1, "SCJG", ["SCJG-001"], date(2026, 12, 1), date(2026, 12, 5)
    )
    await schedule(
        sessionmaker, settings, u1, "YJGL", ["YJGL-001"], date(2026, 12, 1), date(2026, 12, 5)
    )
    await schedule(
        sessionmaker, settings, u2, "XFJY", ["XFJY-001"], date(2026, 5, 4), date(2026, 5, 8)
    )
    await schedule(
        sessionmaker, settings, u2, "XFJY", ["XFJY-001"], date(2026, 9, 7), date(2026, 9, 11)
    )
    await run_detector(sessionmaker)
    rows = await conflicts(sessionmaker)
    merge = next(r.id for r in rows if r.kind == "mergeable")
    repeat = next(r.id for r in rows if r.kind == "repeat")
    return merge, repeat


async def test_list_is_scoped_by_agency(
    client: httpx.AsyncClient,
    admin: Headers,
    make_headers: MakeHeaders,
    three_agencies: tuple[str, str, str],
    sessionmaker: SM,
    settings: Settings,
) -> None:
    merge, repeat = await _scoping_world(client, admin, sessionmaker, settings)
    scjg = await make_headers("scheduler", "SCJG")
    xfjy = await make_headers("approver", "XFJY")
    supervisor = await make_headers("supervisor")

    r = await client.get("/v1/conflicts", params={"status": "open"}, headers=scjg)
    assert r.status_code == 200, r.text
    assert [c["id"] for c in r.json()["items"]] == [merge]
    r = await client.get("/v1/conflicts", headers=xfjy)
    assert [c["id"] for c in r.json()["items"]] == [repeat]
    r = await client.get("/v1/conflicts", headers=supervisor)
    assert sorted(c["id"] for c in r.json()["items"]) == sorted([merge, repeat])
    r = await client.get("/v1/conflicts", params={"kind": "repeat"}, headers=supervisor)
    assert [c["id"] for c in r.json()["items"]] == [repeat]
    r = await client.get("/v1/conflicts", params={"agency": "YJGL"}, headers=supervisor)
    assert [c["id"] for c in r.json()["items"]] == [merge]
    r = await client.get("/v1/conflicts", params={"limit": 1}, headers=supervisor)
    page = r.json()
    assert len(page["items"]) == 1
    assert page["next_cursor"]
    r = await client.get(
        "/v1/conflicts", params={"limit": 1, "cursor": page["next_cursor"]}, headers=supervisor
    )
    assert len(r.json()["items"]) == 1
    assert r.json()["items"][0]["id"] != page["items"][0]["id"]

    assert (
        await client.get("/v1/conflicts", params={"agency": "XFJY"}, headers=scjg)
    ).status_code == 403
    assert (await client.get(f"/v1/conflicts/{repeat}", headers=scjg)).status_code == 403
    assert (await client.get(f"/v1/conflicts/{merge}", headers=scjg)).status_code == 200
    assert (await client.get("/v1/conflicts")).status_code == 401
    r = await client.post(
        f"/v1/conflicts/{repeat}/resolve", json={"resolution": "merged"}, headers=scjg
    )
    assert r.status_code == 403


async def test_resolve_rules(
    client: httpx.AsyncClient,
    admin: Headers,
    make_headers: MakeHeaders,
    three_agencies: tuple[str, str, str],
    sessionmaker: SM,
    settings: Settings,
) -> None:
    merge, repeat = await _scoping_world(client, admin, sessionmaker, settings)
    scjg = await make_headers("scheduler", "SCJG")
    yjgl = await make_headers("scheduler", "YJGL")
    xfjy = await make_headers("scheduler", "XFJY")
    supervisor = await make_headers("supervisor")
    url = f"/v1/conflicts/{merge}/resolve"

    r = await client.post(url, json={"resolution": "justified"}, headers=scjg)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "note"
    r = await client.post(url, json={"resolution": "dismissed"}, headers=scjg)
    assert r.status_code == 403
    r = await client.post(url, json={"resolution": "merged", "extra": 1}, headers=scjg)
    assert r.status_code == 422
    r = await client.post(
        url,
        json={"resolution": "justified", "note": "不同检查对象"},
        headers=scjg,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["resolution"], body["resolution_note"]) == (
        "resolved",
        "justified",
        "不同检查对象",
    )
    r = await client.post(url, json={"resolution": "justified", "note": "again"}, headers=yjgl)
    assert r.status_code == 409
    assert len(await events_of(sessionmaker, "conflict.resolved")) == 1
    async with sessionmaker() as session:
        audits = (
            await session.execute(
                text("SELECT count(*) FROM audit_log WHERE action = 'conflict.resolve'")
            )
        ).scalar()
    assert audits == 1

    # cancelled: names one inspection of the finding, owned by the caller's agency.
    finding = next(r for r in await conflicts(sessionmaker) if r.id == repeat)
    _first, second = sorted(finding.inspection_ids)
    url = f"/v1/conflicts/{repeat}/resolve"
    r = await client.post(url, json={"resolution": "cancelled"}, headers=xfjy)
    assert r.status_code == 422
    r = await client.post(
        url, json={"resolution": "cancelled", "inspection_id": 999999}, headers=xfjy
    )
    assert r.status_code == 422
    r = await client.post(
        url,
        json={"resolution": "cancelled", "inspection_id": second, "note": "重复"},
        headers=xfjy,
        params={},
    )
    assert r.status_code == 200, r.text
    async with sessionmaker() as session:
        status = (
            await session.execute(
                text("SELECT status FROM inspection WHERE id = :i"), {"i": second}
            )
        ).scalar()
    assert status == "cancelled"
    assert len(await events_of(sessionmaker, "inspection.cancelled")) == 1
    r = await client.post(url, json={"resolution": "dismissed"}, headers=supervisor)
    assert r.status_code == 409


async def test_supervisor_dismisses_and_stale_if_match(
    client: httpx.AsyncClient,
    admin: Headers,
    make_headers: MakeHeaders,
    three_agencies: tuple[str, str, str],
    sessionmaker: SM,
    settings: Settings,
) -> None:
    merge, _ = await _scoping_world(client, admin, sessionmaker, settings)
    supervisor = await make_headers("supervisor")
    url = f"/v1/conflicts/{merge}/resolve"
    r = await client.post(
        url, json={"resolution": "dismissed"}, headers={**supervisor, "If-Match": '"7"'}
    )
    assert r.status_code == 412
    r = await client.post(
        url, json={"resolution": "dismissed"}, headers={**supervisor, "If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    assert r.json()["resolution"] == "dismissed"


async def test_cancelled_inspection_settles_its_findings(
    client: httpx.AsyncClient,
    admin: Headers,
    make_headers: MakeHeaders,
    three_agencies: tuple[str, str, str],
    sessionmaker: SM,
    settings: Settings,
) -> None:
    uscc = await add_enterprise(client, admin, 10, "D")
    ids = [
        await schedule(
            sessionmaker,
            settings,
            uscc,
            agency,
            [agency + "-001"],
            date(2026, 12, 1),
            date(2026, 12, 4),
        )
        for agency in ("SCJG", "YJGL", "XFJY")
    ]
    await run_detector(sessionmaker)
    (finding,) = await conflicts(sessionmaker, uscc)
    # Resolving as cancelled cancels XFJY's check; the finding is resolved by that.
    xfjy = await make_headers("scheduler", "XFJY")
    r = await client.post(
        f"/v1/conflicts/{finding.id}/resolve",
        json={"resolution": "cancelled", "inspection_id": ids[2], "note": "另行安排"},
        headers=xfjy,
    )
    assert r.status_code == 200, r.text
    await run_detector(sessionmaker)
    rows = await conflicts(sessionmaker, uscc)
    # The two remaining checks are still mergeable: a new finding for exactly them.
    open_rows = [r for r in rows if r.status == "open"]
    assert [(r.kind, sorted(r.inspection_ids)) for r in open_rows] == [("mergeable", ids[:2])]
