"""bench/floors.py's apps run the service's own statements: what the write floors leave in the
database has the shape the service's approval and submission leave, and the read floor finds the
request the service reads (the floor is only a floor if the database does the same work for it)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from bench.floors import approval_floor_app, precheck_floor_app, submission_floor_app
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.approvals.conftest import World, request_body


async def _rows(sm: async_sessionmaker[AsyncSession], sql: str, **params: Any) -> list[Any]:
    async with sm() as s:
        return list((await s.execute(text(sql), params)).mappings())


async def _written(sm: async_sessionmaker[AsyncSession], request_id: int) -> dict[str, Any]:
    """What a decision or submission left for one request, without ids and times."""
    (req,) = await _rows(
        sm,
        "SELECT status, version, decided_by IS NOT NULL AS decided, decided_by <> requester_id "
        "AS by_other, inspection_id FROM check_request WHERE id = :id",
        id=request_id,
    )
    inspections = await _rows(
        sm,
        "SELECT kind, status, agency_code, code IS NOT NULL AS coded, "
        "(SELECT array_agg(matter_code ORDER BY matter_code) FROM inspection_matter m "
        " WHERE m.enterprise_uscc = i.enterprise_uscc AND m.inspection_id = i.id) AS matters "
        "FROM inspection i WHERE check_request_id = :id",
        id=request_id,
    )
    events = await _rows(
        sm,
        "SELECT type, type_version, aggregate_seq, agency_codes FROM event WHERE (aggregate_type = "
        "'check_request' AND aggregate_id = :sid) OR (aggregate_type = 'inspection' AND "
        "aggregate_id = :iid) ORDER BY id",
        sid=str(request_id),
        iid=str(req["inspection_id"]),
    )
    audits = await _rows(
        sm,
        "SELECT action, object_type FROM audit_log WHERE (object_type = 'check_request' AND "
        "object_id = :sid) OR (object_type = 'inspection' AND object_id = :iid) ORDER BY id DESC",
        sid=str(request_id),
        iid=str(req["inspection_id"]),
    )
    return {
        "request": {k: v for k, v in req.items() if k != "inspection_id"},
        "has_inspection": req["inspection_id"] is not None,
        "inspections": [dict(r) for r in inspections],
        "events": [dict(r) for r in events],
        "audits": sorted((r["action"], r["object_type"]) for r in audits),
    }


def _floor_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://floor")


@pytest.fixture
def bench_dsn(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    monkeypatch.setenv("BENCH_DSN", dsn)
    return dsn


async def test_the_approval_floor_writes_what_the_service_writes(
    client: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    bench_dsn: str,
) -> None:
    ids = []
    for uscc in world.usccs[:2]:
        r = await client.post(
            "/v1/check-requests", json=request_body(uscc), headers=world.scheduler
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    by_service, by_floor = ids
    r = await client.post(
        f"/v1/check-requests/{by_service}/approve",
        json={"comment": "同意"},
        headers=world.approver | {"If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text

    app = approval_floor_app()
    async with app.router.lifespan_context(app), _floor_client(app) as floor:
        r = await floor.post(f"/v1/check-requests/{by_floor}/approve", json={"comment": "同意"})
        assert r.status_code == 200, r.text
        assert r.json() == {"id": by_floor, "status": "approved", "version": 2}
        # decided once: the same request again is refused, an unknown one is not found
        again = await floor.post(f"/v1/check-requests/{by_floor}/approve")
        assert again.status_code == 409
        unknown = await floor.post("/v1/check-requests/999999/approve")
        assert unknown.status_code == 404

    service_rows = await _written(sessionmaker, by_service)
    floor_rows = await _written(sessionmaker, by_floor)
    assert service_rows["request"] == {
        "status": "approved",
        "version": 2,
        "decided": True,
        "by_other": True,
    }
    assert service_rows["has_inspection"]
    # submitted, approved, scheduled
    assert [e["type"] for e in service_rows["events"]] == [
        "check_request.submitted",
        "inspection.scheduled",
        "check_request.approved",
    ]
    assert floor_rows == service_rows


async def test_the_submission_floor_writes_what_the_service_writes(
    client: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    bench_dsn: str,
) -> None:
    r = await client.post(
        "/v1/check-requests", json=request_body(world.usccs[0]), headers=world.scheduler
    )
    assert r.status_code == 201, r.text
    by_service = r.json()["id"]

    app = submission_floor_app()
    async with app.router.lifespan_context(app), _floor_client(app) as floor:
        r = await floor.post("/v1/check-requests", json=request_body(world.usccs[1]))
        assert r.status_code == 201, r.text
        by_floor = r.json()["id"]
        # a matter of another agency: the statement writes nothing
        refused = await floor.post(
            "/v1/check-requests", json=request_body(world.usccs[1], matters=["YJGL-001"])
        )
        assert refused.status_code == 422

    service_rows = await _written(sessionmaker, by_service)
    assert service_rows["request"]["status"] == "pending"
    assert service_rows["events"] == [
        {
            "type": "check_request.submitted",
            "type_version": 1,
            "aggregate_seq": 1,
            "agency_codes": ["SCJG"],
        }
    ]
    assert service_rows["audits"] == [("check_request.submit", "check_request")]
    assert await _written(sessionmaker, by_floor) == service_rows
    (count,) = await _rows(sessionmaker, "SELECT count(*) AS n FROM check_request")
    assert count["n"] == 2


async def test_the_precheck_floor_reads_the_request_the_service_reads(
    client: httpx.AsyncClient, world: World, bench_dsn: str
) -> None:
    ids = []
    for _ in range(2):  # the second request finds the first among its pending facts
        r = await client.post(
            "/v1/check-requests", json=request_body(world.usccs[0]), headers=world.scheduler
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    read = await client.get(f"/v1/check-requests/{ids[1]}", headers=world.supervisor)
    assert read.status_code == 200, read.text
    assert read.json()["precheck"] is not None

    app = precheck_floor_app()
    async with app.router.lifespan_context(app), _floor_client(app) as floor:
        for request_id in ids:
            r = await floor.get(f"/v1/check-requests/{request_id}")
            assert r.status_code == 200, r.text
            assert r.json() == {"id": request_id, "version": 1}
        assert read.headers["etag"] == '"1"'
        unknown = await floor.get(f"/v1/check-requests/{ids[1] + 1000}")
        assert unknown.status_code == 404
