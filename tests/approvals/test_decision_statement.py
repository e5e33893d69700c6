"""A decision made in one statement writes exactly what the step-by-step path wrote.

The API decides with `service.decide_at_once` (one read, then one statement in autocommit);
these tests pin the rows, audit entries and events it leaves, against the shapes the rest of
the system (inspections.service, events.outbox, the audit chain) produces on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.config import Settings
from inspection_hub.events.outbox import NOTIFY_CHANNEL
from inspection_hub.inspections.models import Inspection
from inspection_hub.inspections.service import keyring_for, load_matters, scheduled_payload
from inspection_hub.kit.timeutil import local_today
from inspection_hub.main import create_app
from tests.approvals.conftest import World, request_body
from tests.conftest import private_client

# What a decision adds: events and audit rows of requests and inspections after submission.
_EVENTS = (
    "SELECT count(*) FROM event WHERE aggregate_type IN ('check_request', 'inspection') "
    "AND type <> 'check_request.submitted'"
)
_AUDITS = (
    "SELECT count(*) FROM audit_log WHERE object_type IN ('check_request', 'inspection') "
    "AND action <> 'check_request.submit'"
)


async def _rows(sm: async_sessionmaker[AsyncSession], sql: str, **params: Any) -> list[Any]:
    async with sm() as s:
        return list((await s.execute(text(sql), params)).mappings())


async def _file(client: httpx.AsyncClient, world: World, **overrides: Any) -> dict[str, Any]:
    r = await client.post(
        "/v1/check-requests",
        json=request_body(world.usccs[0], **overrides),
        headers=world.scheduler,
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_approval_writes_inspection_audit_and_events_as_the_steps_did(
    client: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    filed = await _file(client, world)
    rid = filed["id"]
    r = await client.post(
        f"/v1/check-requests/{rid}/approve",
        json={"comment": "同意"},
        headers={**world.approver, "If-Match": '"1"', "X-Request-ID": "req-approve-1"},
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert r.headers["etag"] == '"2"'
    iid = answer["inspection_id"]
    assert (answer["status"], answer["version"], answer["decision_comment"]) == (
        "approved",
        2,
        "同意",
    )
    approver = answer["decided_by"]

    # The stored request is what the answer says (the answer is built without reading it back).
    shown = (await client.get(f"/v1/check-requests/{rid}", headers=world.approver)).json()
    assert {k: v for k, v in answer.items() if k != "precheck"} == {
        k: v for k, v in shown.items() if k != "precheck"
    }
    stored = (await _rows(sessionmaker, "SELECT * FROM check_request WHERE id = :i", i=rid))[0]
    assert (stored["status"], stored["version"], stored["inspection_id"]) == ("approved", 2, iid)
    assert stored["decided_by"] == approver["id"]
    assert stored["decided_at"].isoformat() == answer["decided_at"].replace("Z", "+00:00")

    # The inspection, its matters and its signed code.
    async with sessionmaker() as s:
        inspection = (await s.execute(select(Inspection).where(Inspection.id == iid))).scalar_one()
        matters = await load_matters(s, filed["matters"])
        expected_scheduled = scheduled_payload(inspection, matters, [])
    assert (inspection.kind, inspection.status, inspection.version) == ("unplanned", "scheduled", 1)
    assert inspection.check_request_id == rid
    assert inspection.basis == "complaint"
    assert inspection.emergency is False
    assert inspection.agency_code == "SCJG"
    assert inspection.year == inspection.window_start.year
    assert inspection.window_start.isoformat() == filed["window"]["start"]
    claims = keyring_for(settings.data_dir).verify(inspection.code or "", local_today())
    assert (claims.inspection_id, claims.agency_code, claims.uscc) == (
        iid,
        "SCJG",
        filed["enterprise"],
    )
    matter_rows = await _rows(
        sessionmaker,
        "SELECT matter_code, agency_code, category FROM inspection_matter WHERE inspection_id = :i",
        i=iid,
    )
    assert [dict(m) for m in matter_rows] == [
        {"matter_code": "SCJG-001", "agency_code": "SCJG", "category": "food_safety"}
    ]

    # Two audit rows, both with the request id: the inspection scheduled, the decision.
    audits = await _rows(
        sessionmaker,
        "SELECT action, object_type, object_id, actor_id, role, before, after, request_id "
        "FROM audit_log WHERE action IN ('inspection.schedule', 'check_request.approve') "
        "ORDER BY id DESC",
    )
    assert [(a["action"], a["object_type"], a["object_id"]) for a in audits] == [
        ("inspection.schedule", "inspection", str(iid)),
        ("check_request.approve", "check_request", str(rid)),
    ]
    assert {a["request_id"] for a in audits} == {"req-approve-1"}
    assert {(a["actor_id"], a["role"]) for a in audits} == {(approver["id"], "approver")}
    schedule_audit, decision_audit = audits
    assert schedule_audit["before"] is None
    assert schedule_audit["after"] == expected_scheduled
    assert decision_audit["before"] == {"status": "pending", "version": 1}
    decision = decision_audit["after"]
    assert decision["check_request_id"] == rid
    assert (decision["status"], decision["version"], decision["inspection_id"]) == (
        "approved",
        2,
        iid,
    )
    assert decision["decided_by"] == approver["id"]
    assert decision["decided_by_name"] == approver["name"]
    assert decision["comment"] == "同意"
    assert decision["decision_due_at"] == filed["decision_due_at"].replace("Z", "+00:00")

    # Two events in the outbox, in order per aggregate, with the audit rows' payloads.
    events = await _rows(
        sessionmaker,
        "SELECT type, type_version, aggregate_type, aggregate_id, aggregate_seq, "
        "enterprise_uscc, agency_codes, payload, commit_order FROM event "
        "WHERE aggregate_type IN ('check_request', 'inspection') ORDER BY id",
    )
    assert [(e["type"], e["aggregate_id"], e["aggregate_seq"]) for e in events] == [
        ("check_request.submitted", str(rid), 1),
        ("inspection.scheduled", str(iid), 1),
        ("check_request.approved", str(rid), 2),
    ]
    submitted, scheduled, approved = events
    assert scheduled["payload"] == expected_scheduled
    assert approved["payload"] == decision
    assert scheduled["aggregate_type"] == "inspection"
    assert approved["aggregate_type"] == "check_request"
    for e in (scheduled, approved):
        assert e["enterprise_uscc"] == filed["enterprise"]
        assert e["agency_codes"] == ["SCJG"]
        assert e["type_version"] == 1
    assert approved["commit_order"] >= submitted["commit_order"]


async def test_reject_and_withdraw_write_one_audit_row_and_one_event_each(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    rejected = await _file(client, world)
    withdrawn = await _file(client, world)
    r = await client.post(
        f"/v1/check-requests/{rejected['id']}/reject",
        json={"comment": "依据不足"},
        headers=world.approver,
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/check-requests/{withdrawn['id']}/withdraw", headers=world.scheduler)
    assert r.status_code == 200, r.text
    assert r.json()["decided_by"]["id"] == r.json()["requester"]["id"]

    for filed, action, event in (
        (rejected, "check_request.reject", "check_request.rejected"),
        (withdrawn, "check_request.withdraw", "check_request.withdrawn"),
    ):
        audits = await _rows(
            sessionmaker,
            "SELECT action, before, after FROM audit_log WHERE object_type = 'check_request' "
            "AND object_id = :i AND action <> 'check_request.submit'",
            i=str(filed["id"]),
        )
        events = await _rows(
            sessionmaker,
            "SELECT type, aggregate_seq, payload FROM event WHERE aggregate_id = :i "
            "AND type <> 'check_request.submitted'",
            i=str(filed["id"]),
        )
        assert [a["action"] for a in audits] == [action]
        assert [(e["type"], e["aggregate_seq"]) for e in events] == [(event, 2)]
        assert audits[0]["before"] == {"status": "pending", "version": 1}
        assert audits[0]["after"] == events[0]["payload"]
        assert audits[0]["after"]["inspection_id"] is None
    assert (await _rows(sessionmaker, "SELECT count(*) AS n FROM inspection"))[0]["n"] == 0


async def test_value_the_database_cannot_hold_is_422_and_changes_nothing(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    filed = await _file(client, world)
    r = await client.post(
        f"/v1/check-requests/{filed['id']}/approve",
        json={"comment": "同意\u0000"},
        headers=world.approver,
    )
    assert r.status_code == 422, r.text
    stored = (
        await _rows(
            sessionmaker, "SELECT status, version FROM check_request WHERE id = :i", i=filed["id"]
        )
    )[0]
    assert (stored["status"], stored["version"]) == ("pending", 1)
    counts = await _rows(
        sessionmaker,
        "SELECT (SELECT count(*) FROM inspection) AS inspections, "
        f"({_EVENTS}) AS events, ({_AUDITS}) AS audits",
    )
    assert dict(counts[0]) == {"inspections": 0, "events": 0, "audits": 0}
    # ... and the request can still be decided.
    r = await client.post(f"/v1/check-requests/{filed['id']}/approve", headers=world.approver)
    assert r.status_code == 200, r.text


async def test_ids_beyond_bigint_are_404_not_500(client: httpx.AsyncClient, world: World) -> None:
    for action in ("approve", "reject", "withdraw"):
        r = await client.post(
            f"/v1/check-requests/{2**63}/{action}",
            json={"comment": "x"},
            headers=world.scheduler if action == "withdraw" else world.approver,
        )
        assert r.status_code == 404, (action, r.text)


async def test_refused_decisions_write_nothing(
    client: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    make_headers: Callable[..., Awaitable[dict[str, str]]],
) -> None:
    filed = await _file(client, world)
    url = f"/v1/check-requests/{filed['id']}/approve"
    scheduler_as_approver = await make_headers("scheduler", "SCJG")
    for headers, status in (
        (world.other_approver, 403),  # another agency
        (scheduler_as_approver, 403),  # not an approver
        ({**world.approver, "If-Match": '"2"'}, 412),
    ):
        r = await client.post(url, headers=headers)
        assert r.status_code == status, r.text
    r = await client.post(f"/v1/check-requests/{filed['id']}/withdraw", headers=world.approver)
    assert r.status_code == 403
    counts = await _rows(
        sessionmaker,
        "SELECT (SELECT count(*) FROM inspection) AS inspections, "
        f"({_EVENTS}) AS events, ({_AUDITS}) AS audits, "
        "(SELECT version FROM check_request) AS version",
    )
    assert dict(counts[0]) == {"inspections": 0, "events": 0, "audits": 0, "version": 1}


async def test_a_dropped_connection_fails_at_most_one_decision_and_is_not_reused(
    world: World,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    settings: Settings,
) -> None:
    """A backend terminated while its connection idles in the statement pool: the next decision
    either gets a fresh connection (asyncpg saw the socket close) or fails once with a 503 that
    decided nothing (D33: the database was out of reach, retry); no decision after it meets the
    dead connection again."""
    app = create_app(settings, database_url)
    first, second = await _file(client, world), await _file(client, world)
    async with private_client(app) as own:
        r = await own.get(f"/v1/check-requests/{first['id']}", headers=world.approver)
        assert r.status_code == 200  # the statement pool now holds one idle connection
        pool = app.state.statement_pool
        assert pool.get_size() == 1
        async with pool.acquire() as pooled:  # that one, checked out and back
            pid = pooled.get_server_pid()
        async with sessionmaker() as s:  # only this app's connection: the shared app keeps its
            killed = (
                await s.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            ).scalar_one()
        assert killed is True
        r = await own.post(f"/v1/check-requests/{first['id']}/approve", headers=world.approver)
        assert r.status_code in (200, 503), r.text
        if r.status_code == 503:  # it failed before anything was written: decide it again
            assert r.headers["retry-after"] == "2"
            version = await _rows(
                sessionmaker, f"SELECT version FROM check_request WHERE id = {first['id']}"
            )
            assert version[0]["version"] == 1
            r = await own.post(f"/v1/check-requests/{first['id']}/approve", headers=world.approver)
            assert r.status_code == 200, r.text
        r = await own.post(f"/v1/check-requests/{second['id']}/approve", headers=world.approver)
        assert r.status_code == 200, r.text
        async with pool.acquire() as pooled:
            assert pooled.get_server_pid() != pid
    decided = await _rows(
        sessionmaker,
        "SELECT count(*) AS n FROM check_request WHERE status = 'approved' AND version = 2",
    )
    assert decided[0]["n"] == 2


async def test_an_approval_wakes_the_event_workers(
    client: httpx.AsyncClient, world: World, database_url: str
) -> None:
    filed = await _file(client, world)
    listener = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    woken: asyncio.Queue[str] = asyncio.Queue()
    try:
        await listener.add_listener(NOTIFY_CHANNEL, lambda *args: woken.put_nowait(args[2]))
        r = await client.post(f"/v1/check-requests/{filed['id']}/approve", headers=world.approver)
        assert r.status_code == 200, r.text
        assert await asyncio.wait_for(woken.get(), timeout=10) == NOTIFY_CHANNEL
    finally:
        await listener.close()
