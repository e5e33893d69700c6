"""The check request flow through HTTP: submission, pre-check, decisions, emergencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.kit.timeutil import local_today
from tests.approvals.conftest import World, request_body


async def _count(sm: async_sessionmaker[AsyncSession], sql: str, **params: object) -> int:
    async with sm() as s:
        return int((await s.execute(text(sql), params)).scalar_one())


async def test_submit_answers_pending_with_deadline_and_precheck(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    r = await client.post(
        "/v1/check-requests", json=request_body(world.usccs[0]), headers=world.scheduler
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "pending"
    assert body["version"] == 1
    assert body["decision_due_at"]
    assert body["inspection_id"] is None
    pre = body["precheck"]
    assert pre["inspections"] == []
    assert pre["cap"]["count"] == 0
    assert pre["cap"]["with_this_request"] == 1
    assert pre["cap"]["cap_exempt_basis"] is True  # complaint
    assert r.headers["location"] == f"/v1/check-requests/{body['id']}"
    assert (
        await _count(
            sessionmaker, "SELECT count(*) FROM event WHERE type = 'check_request.submitted'"
        )
        == 1
    )
    assert (
        await _count(
            sessionmaker,
            "SELECT count(*) FROM audit_log "
            "WHERE action = 'check_request.submit' AND object_id = :i",
            i=str(body["id"]),
        )
        == 1
    )


async def test_approve_creates_inspection_and_precheck_shows_history(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    uscc = world.usccs[0]
    r = await client.post("/v1/check-requests", json=request_body(uscc), headers=world.scheduler)
    rid = r.json()["id"]
    r = await client.post(
        f"/v1/check-requests/{rid}/approve", json={"comment": "同意"}, headers=world.approver
    )
    assert r.status_code == 200, r.text
    approved = r.json()
    assert approved["status"] == "approved"
    assert approved["version"] == 2
    assert approved["decided_at"]
    iid = approved["inspection_id"]
    assert iid is not None
    async with sessionmaker() as s:
        row = (
            await s.execute(
                text(
                    "SELECT kind, status, check_request_id, basis, code "
                    "FROM inspection WHERE id = :i"
                ),
                {"i": iid},
            )
        ).one()
    assert (row.kind, row.status, row.check_request_id, row.basis) == (
        "unplanned",
        "scheduled",
        rid,
        "complaint",
    )
    assert row.code

    # Another agency files for the same enterprise: sees SCJG's check without matters/outcome,
    # a merge candidate and a mergeable finding.
    body = request_body(uscc, agency="YJGL", matters=["YJGL-001"], basis="referral")
    r = await client.post("/v1/check-requests", json=body, headers=world.other_scheduler)
    assert r.status_code == 201, r.text
    pre = r.json()["precheck"]
    assert [i["id"] for i in pre["inspections"]] == [iid]
    seen = pre["inspections"][0]
    assert seen["agency"] == "SCJG"
    assert seen["own_agency"] is False
    assert "matters" not in seen
    assert "outcome" not in seen
    assert seen["categories"] == ["food_safety"]
    assert pre["cap"]["count"] == 1
    assert [m["inspection_id"] for m in pre["mergeable"]] == [iid]
    assert "mergeable" in [f["kind"] for f in pre["findings"]]

    # SCJG's approver reading its own request sees the full record.
    r = await client.get(f"/v1/check-requests/{rid}", headers=world.approver)
    assert r.status_code == 200
    assert r.headers["etag"] == '"2"'


async def test_cap_and_cap_exempt_basis_in_precheck(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    uscc = world.usccs[1]
    async with sessionmaker() as s, s.begin():
        await s.execute(text("UPDATE enterprise SET risk_class = 'A' WHERE uscc = :u"), {"u": uscc})
        await s.execute(
            text("UPDATE enterprise_risk_class SET risk_class = 'A' WHERE enterprise_uscc = :u"),
            {"u": uscc},
        )
    r = await client.post("/v1/check-requests", json=request_body(uscc), headers=world.scheduler)
    await client.post(f"/v1/check-requests/{r.json()['id']}/approve", headers=world.approver)
    body = request_body(uscc, basis="referral")
    r = await client.post("/v1/check-requests", json=body, headers=world.scheduler)
    pre = r.json()["precheck"]
    assert pre["cap"]["risk_class"] == "A"
    assert pre["cap"]["cap"] == 1
    assert pre["cap"]["count"] == 1
    assert pre["cap"]["remaining"] == 0
    assert pre["cap"]["would_exceed"] is True
    assert pre["cap"]["cap_exempt_basis"] is False
    kinds = {f["kind"]: f for f in pre["findings"]}
    assert kinds["cap_exceeded"]["detail"]["blocking"] is True
    assert "repeat" in kinds


async def test_reject_needs_comment_and_withdraw_by_requester_only(
    client: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    make_headers: Callable[..., Awaitable[dict[str, str]]],
) -> None:
    r = await client.post(
        "/v1/check-requests", json=request_body(world.usccs[0]), headers=world.scheduler
    )
    rid = r.json()["id"]
    r = await client.post(f"/v1/check-requests/{rid}/reject", json={}, headers=world.approver)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "comment"
    r = await client.post(
        f"/v1/check-requests/{rid}/reject", json={"comment": "   "}, headers=world.approver
    )
    assert r.status_code == 422
    r = await client.post(
        f"/v1/check-requests/{rid}/reject", json={"comment": "依据不足"}, headers=world.approver
    )
    assert r.status_code == 200
    assert r.json()["status"] == "rejected"
    assert r.json()["decision_comment"] == "依据不足"
    assert r.json()["inspection_id"] is None

    r = await client.post(
        "/v1/check-requests", json=request_body(world.usccs[0]), headers=world.scheduler
    )
    rid2 = r.json()["id"]
    colleague = await make_headers("scheduler", "SCJG")
    r = await client.post(f"/v1/check-requests/{rid2}/withdraw", headers=colleague)
    assert r.status_code == 403
    r = await client.post(f"/v1/check-requests/{rid2}/withdraw", headers=world.scheduler)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "withdrawn"
    r = await client.post(f"/v1/check-requests/{rid2}/approve", headers=world.approver)
    assert r.status_code == 409
    assert await _count(sessionmaker, "SELECT count(*) FROM inspection") == 0


async def test_list_queue_scoped_and_oldest_first(client: httpx.AsyncClient, world: World) -> None:
    ids = []
    for uscc in world.usccs:
        r = await client.post(
            "/v1/check-requests", json=request_body(uscc), headers=world.scheduler
        )
        ids.append(r.json()["id"])
    body = request_body(world.usccs[0], agency="YJGL", matters=["YJGL-001"])
    r = await client.post("/v1/check-requests", json=body, headers=world.other_scheduler)
    other_id = r.json()["id"]
    await client.post(f"/v1/check-requests/{ids[1]}/approve", headers=world.approver)

    r = await client.get("/v1/check-requests?status=pending", headers=world.approver)
    assert r.status_code == 200
    assert [i["id"] for i in r.json()["items"]] == [ids[0], ids[2]]
    r = await client.get("/v1/check-requests?status=pending&agency=YJGL", headers=world.approver)
    assert r.status_code == 403
    r = await client.get("/v1/check-requests", headers=world.supervisor)
    assert [i["id"] for i in r.json()["items"]] == [*ids, other_id]
    # cursor pagination
    r = await client.get("/v1/check-requests?limit=2", headers=world.supervisor)
    page = r.json()
    assert [i["id"] for i in page["items"]] == ids[:2]
    r = await client.get(
        f"/v1/check-requests?limit=2&cursor={page['next_cursor']}", headers=world.supervisor
    )
    assert [i["id"] for i in r.json()["items"]] == [ids[2], other_id]
    assert r.json()["next_cursor"] is None
    # object-level scope on reads
    r = await client.get(f"/v1/check-requests/{other_id}", headers=world.approver)
    assert r.status_code == 403
    r = await client.get(f"/v1/check-requests/{other_id}", headers=world.supervisor)
    assert r.status_code == 200
    r = await client.get("/v1/check-requests/999999", headers=world.supervisor)
    assert r.status_code == 404


async def test_emergency_scheduled_at_submission_and_cancelled_on_rejection(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = request_body(world.usccs[0], basis="incident", emergency=True)
    body["window"]["start"] = local_today().isoformat()
    r = await client.post("/v1/check-requests", json=body, headers=world.scheduler)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "pending"
    iid = created["inspection_id"]
    assert iid is not None
    # the request's own inspection is not its own history
    assert created["precheck"]["inspections"] == []
    r = await client.get(f"/v1/check-requests/{created['id']}", headers=world.approver)
    assert r.json()["precheck"]["inspections"] == []
    assert r.json()["precheck"]["cap"]["count"] == 0

    r = await client.post(
        f"/v1/check-requests/{created['id']}/reject",
        json={"comment": "不属于紧急情形"},
        headers=world.approver,
    )
    assert r.status_code == 200, r.text
    assert r.json()["inspection_id"] == iid
    async with sessionmaker() as s:
        status = (
            await s.execute(text("SELECT status FROM inspection WHERE id = :i"), {"i": iid})
        ).scalar_one()
        cancelled_events = (
            await s.execute(text("SELECT count(*) FROM event WHERE type = 'inspection.cancelled'"))
        ).scalar_one()
        payload = (
            await s.execute(text("SELECT payload FROM event WHERE type = 'check_request.rejected'"))
        ).scalar_one()
    assert status == "cancelled"
    assert cancelled_events == 1
    assert payload["inspection"] == {"id": iid, "cancelled": True, "status": "cancelled"}


async def test_emergency_approval_keeps_the_inspection(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = request_body(world.usccs[0], basis="complaint", emergency=True)
    r = await client.post("/v1/check-requests", json=body, headers=world.scheduler)
    iid = r.json()["inspection_id"]
    r = await client.post(f"/v1/check-requests/{r.json()['id']}/approve", headers=world.approver)
    assert r.status_code == 200
    assert r.json()["inspection_id"] == iid
    assert await _count(sessionmaker, "SELECT count(*) FROM inspection") == 1


async def test_if_match_stale_is_412_and_current_works(
    client: httpx.AsyncClient, world: World
) -> None:
    r = await client.post(
        "/v1/check-requests", json=request_body(world.usccs[0]), headers=world.scheduler
    )
    rid = r.json()["id"]
    r = await client.post(
        f"/v1/check-requests/{rid}/approve", headers={**world.approver, "If-Match": '"7"'}
    )
    assert r.status_code == 412
    r = await client.post(
        f"/v1/check-requests/{rid}/approve", headers={**world.approver, "If-Match": '"1"'}
    )
    assert r.status_code == 200
    r = await client.post(
        f"/v1/check-requests/{rid}/approve", headers={**world.approver, "If-Match": '"1"'}
    )
    assert r.status_code == 409


async def test_submission_without_key_writes_request_event_and_audit_together(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # No Idempotency-Key: the request, its event and its audit row are one statement outside a
    # transaction; what the event says and what the audit row says must be the same record.
    r = await client.post(
        "/v1/check-requests", json=request_body(world.usccs[1]), headers=world.scheduler
    )
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    async with sessionmaker() as s:
        event = (
            await s.execute(
                text(
                    "SELECT aggregate_id, aggregate_seq, enterprise_uscc, agency_codes, payload "
                    "FROM event WHERE type = 'check_request.submitted'"
                )
            )
        ).one()
        audit = (
            await s.execute(
                text("SELECT object_id, after FROM audit_log WHERE action = 'check_request.submit'")
            )
        ).one()
        stored = (
            await s.execute(
                text("SELECT status, version, matters FROM check_request WHERE id = :i"),
                {"i": rid},
            )
        ).one()
    assert (event.aggregate_id, event.aggregate_seq) == (str(rid), 1)
    assert (event.enterprise_uscc, list(event.agency_codes)) == (world.usccs[1], ["SCJG"])
    assert event.payload == audit.after
    assert audit.object_id == str(rid)
    assert event.payload["check_request_id"] == rid
    assert event.payload["categories"] == ["food_safety"]
    assert event.payload["status"] == "pending"
    assert event.payload["inspection_id"] is None
    assert (stored.status, stored.version, list(stored.matters)) == ("pending", 1, ["SCJG-001"])


async def test_refused_submission_writes_nothing(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    tables = ("check_request", "event", "audit_log")
    before = [await _count(sessionmaker, f"SELECT count(*) FROM {t}") for t in tables]
    body = request_body("91350100M000100Y43", matters=["SCJG-001", "NOPE-9"])
    r = await client.post("/v1/check-requests", json=body, headers=world.scheduler)
    assert r.status_code == 422, r.text
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"enterprise", "matters.1"} <= fields
    after = [await _count(sessionmaker, f"SELECT count(*) FROM {t}") for t in tables]
    assert after == before


async def test_one_statement_and_session_submissions_store_the_same_record(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # Without an Idempotency-Key a submission is one statement on a bare connection; with one it
    # goes through the session (its answer is stored with it). Both must file the same record.
    fast = await client.post(
        "/v1/check-requests", json=request_body(world.usccs[1]), headers=world.scheduler
    )
    keyed = await client.post(
        "/v1/check-requests",
        json=request_body(world.usccs[2]),
        headers=world.scheduler | {"Idempotency-Key": "parity-1"},
    )
    assert fast.status_code == keyed.status_code == 201, (fast.text, keyed.text)
    ids = {fast.json()["id"]: world.usccs[1], keyed.json()["id"]: world.usccs[2]}
    skip = {"id", "enterprise", "submitted_at", "decision_due_at", "expires_at", "precheck"}
    a, b = ({k: v for k, v in r.json().items() if k not in skip} for r in (fast, keyed))
    assert a == b
    assert fast.json()["precheck"].keys() == keyed.json()["precheck"].keys()

    def same(record: dict[str, object], rid: int) -> dict[str, object]:
        assert record.pop("check_request_id") == rid
        assert record.pop("enterprise") == ids[rid]
        record.pop("decision_due_at")
        return record

    async with sessionmaker() as s:
        events = {
            int(e.aggregate_id): e
            for e in await s.execute(
                text(
                    "SELECT aggregate_id, aggregate_seq, agency_codes, payload FROM event "
                    "WHERE type = 'check_request.submitted'"
                )
            )
        }
        audits = {
            int(x.object_id): x
            for x in await s.execute(
                text(
                    "SELECT object_id, actor_id, actor_name, role, before, after FROM audit_log "
                    "WHERE action = 'check_request.submit'"
                )
            )
        }
        rows = {
            r["id"]: dict(r)
            for r in (
                await s.execute(
                    text("SELECT * FROM check_request WHERE id = ANY(:ids)"), {"ids": list(ids)}
                )
            ).mappings()
        }
    (fid, kid) = list(ids)
    assert same(dict(events[fid].payload), fid) == same(dict(events[kid].payload), kid)
    assert (events[fid].aggregate_seq, events[kid].aggregate_seq) == (1, 1)
    assert list(events[fid].agency_codes) == list(events[kid].agency_codes) == ["SCJG"]
    assert same(dict(audits[fid].after), fid) == same(dict(audits[kid].after), kid)
    assert audits[fid].before is None
    assert audits[kid].before is None
    assert audits[fid][1:4] == audits[kid][1:4]
    varying = {"id", "enterprise_uscc", "submitted_at", "decision_due_at", "expires_at"}
    varying |= {"created_at", "updated_at"}
    assert {k: v for k, v in rows[fid].items() if k not in varying} == {
        k: v for k, v in rows[kid].items() if k not in varying
    }
    assert rows[fid]["submitted_at"] == rows[fid]["created_at"] == rows[fid]["updated_at"]


async def test_submission_precheck_is_the_one_a_fresh_read_gives(
    client: httpx.AsyncClient, world: World
) -> None:
    # The one-statement submission computes the pre-check from facts read before its insert; a
    # read just after (which loads the stored request and leaves it out) must agree, history and
    # other pending requests included.
    uscc = world.usccs[0]
    other = request_body(uscc, agency="YJGL", matters=["YJGL-001"])
    first = await client.post("/v1/check-requests", json=other, headers=world.other_scheduler)
    assert first.status_code == 201, first.text
    second = await client.post(
        "/v1/check-requests",
        json=request_body(uscc, basis="referral", basis_ref=None),
        headers=world.scheduler,
    )
    assert second.status_code == 201, second.text
    posted = second.json()["precheck"]
    read = await client.get(f"/v1/check-requests/{second.json()['id']}", headers=world.scheduler)
    assert read.status_code == 200, read.text
    assert posted == read.json()["precheck"]
    # the other agency's open request is a merge candidate of this one, and nothing else is
    assert [m["check_request_id"] for m in posted["mergeable"]] == [first.json()["id"]]


async def test_refused_submission_draws_no_request_id(
    client: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    ok = await client.post(
        "/v1/check-requests", json=request_body(world.usccs[0]), headers=world.scheduler
    )
    other_agency = request_body(world.usccs[0], matters=["YJGL-001"])
    refused = await client.post("/v1/check-requests", json=other_agency, headers=world.scheduler)
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["matters.0"]
    again = await client.post(
        "/v1/check-requests", json=request_body(world.usccs[1]), headers=world.scheduler
    )
    assert again.json()["id"] == ok.json()["id"] + 1
