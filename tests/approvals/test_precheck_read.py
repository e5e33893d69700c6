"""GET /v1/check-requests/{id} reads the request and its pre-check in one statement.

`service.read_request` joins the request, its matters' categories and `precheck_facts` in one
round trip on a driver connection, and `service.pending_queue` does the same for the approvers'
queue page; these tests pin both to the step-by-step path they replaced (`precheck_of`: the
row, `load_enterprise_rows`, the matters, through the session).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.approvals import service
from inspection_hub.approvals.schemas import read_of
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.config import Settings
from inspection_hub.conflicts.facts import (
    enterprise_rows_call,
    facts_of,
    load_enterprise_rows,
)
from inspection_hub.errors import Forbidden, NotFound, ValidationFailed
from tests.approvals.conftest import World, request_body

SUPERVISOR = Principal(900, "sup", "督查", Role.supervisor, None)
SCJG_APPROVER = Principal(901, "scjg.head", "市场局负责人", Role.approver, "SCJG")
YJGL_APPROVER = Principal(902, "yjgl.head", "应急局负责人", Role.approver, "YJGL")


@pytest.fixture
async def driver(app: Any) -> AsyncIterator[Any]:
    """A pooled asyncpg connection of the app's engine, in autocommit (as the route has it)."""
    async with app.state.engine.connect() as conn:
        yield (await conn.get_raw_connection()).driver_connection


async def _file(client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> int:
    r = await client.post("/v1/check-requests", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _history(client: httpx.AsyncClient, world: World) -> dict[str, int]:
    """On one enterprise: an approved SCJG check (an inspection), YJGL's pending request in the
    same weeks, and the SCJG request to read, pending."""
    uscc = world.usccs[0]
    approved = await _file(client, world.scheduler, request_body(uscc))
    r = await client.post(f"/v1/check-requests/{approved}/approve", headers=world.approver)
    assert r.status_code == 200, r.text
    other = await _file(
        client,
        world.other_scheduler,
        request_body(uscc, agency="YJGL", matters=["YJGL-001"], basis="referral"),
    )
    read = await _file(client, world.scheduler, request_body(uscc, basis="referral"))
    return {
        "approved": approved,
        "inspection": int(r.json()["inspection_id"]),
        "other": other,
        "read": read,
    }


async def _old_path(
    sm: async_sessionmaker[AsyncSession], viewer: Principal, rid: int, settings: Settings
) -> tuple[Any, dict[str, Any] | None]:
    """The request row and its pre-check as the route computed them before (three statements)."""
    async with sm() as session:
        row = (
            (await session.execute(text("SELECT * FROM check_request WHERE id = :i"), {"i": rid}))
            .mappings()
            .one()
        )
        return row, await service.precheck_of(session, viewer, row, settings=settings)


@pytest.mark.parametrize("viewer", [SUPERVISOR, SCJG_APPROVER], ids=["supervisor", "approver"])
async def test_one_statement_gives_the_step_by_step_precheck(
    client: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    driver: Any,
    viewer: Principal,
) -> None:
    ids = await _history(client, world)
    for rid in (ids["read"], ids["approved"]):
        view = await service.read_request(driver, viewer, rid, settings=settings)
        row, precheck = await _old_path(sessionmaker, viewer, rid, settings)
        assert view.precheck == precheck
        assert read_of(view.row, view.precheck) == read_of(row, precheck)

    pre = (await service.read_request(driver, viewer, ids["read"], settings=settings)).precheck
    assert pre is not None
    # the approved check is this year's history, YJGL's pending request a merge candidate
    assert [i["id"] for i in pre["inspections"]] == [ids["inspection"]]
    assert pre["inspections"][0]["own_agency"] is True
    assert pre["cap"]["count"] == 1
    assert {m["check_request_id"] for m in pre["mergeable"]} == {ids["other"]}
    assert {m["inspection_id"] for m in pre["mergeable"]} == {None}
    assert "repeat" in {f["kind"] for f in pre["findings"]}


async def test_http_answer_is_the_old_body_with_its_etag(
    client: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    ids = await _history(client, world)
    # YJGL's approver sees SCJG's inspection in its pre-check without matters or outcome
    for headers, viewer, rid in (
        (world.supervisor, SUPERVISOR, ids["read"]),
        (world.approver, SCJG_APPROVER, ids["approved"]),
        (world.other_approver, YJGL_APPROVER, ids["other"]),
    ):
        r = await client.get(f"/v1/check-requests/{rid}", headers=headers)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        row, precheck = await _old_path(sessionmaker, viewer, rid, settings)
        assert r.content == read_of(row, precheck).model_dump_json().encode()
        assert r.headers["etag"] == f'"{row["version"]}"'
    seen = r.json()["precheck"]["inspections"]
    assert [(i["id"], i["own_agency"]) for i in seen] == [(ids["inspection"], False)]
    assert "matters" not in seen[0]
    assert "outcome" not in seen[0]


async def test_other_agency_is_refused_and_unknown_ids_are_not_found(
    client: httpx.AsyncClient, world: World, settings: Settings, driver: Any
) -> None:
    ids = await _history(client, world)
    r = await client.get(f"/v1/check-requests/{ids['read']}", headers=world.other_approver)
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert "precheck" not in r.json()
    assert "enterprise" not in r.json()
    assert r.json()["detail"] == (
        "Role approver of agency YJGL may not act on objects of agency SCJG."
    )
    with pytest.raises(Forbidden):
        await service.read_request(driver, YJGL_APPROVER, ids["read"], settings=settings)

    for rid in (999_999, 0, -1):
        r = await client.get(f"/v1/check-requests/{rid}", headers=world.supervisor)
        assert r.status_code == 404
        assert r.json()["detail"] == f"Check request {rid} does not exist."
        with pytest.raises(NotFound):
            await service.read_request(driver, SUPERVISOR, rid, settings=settings)
    # beyond bigint: the 422 the session path answered with the driver's range error
    for rid in (2**63, -(2**63) - 1, 10**20):
        r = await client.get(f"/v1/check-requests/{rid}", headers=world.supervisor)
        assert r.status_code == 422
        assert (
            r.json()["detail"] == "A value in the request cannot be stored (out of range or NUL)."
        )
        with pytest.raises(ValidationFailed):
            await service.read_request(driver, SUPERVISOR, rid, settings=settings)


async def test_no_policy_in_force_means_no_precheck_on_both_paths(
    client: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    driver: Any,
) -> None:
    ids = await _history(client, world)
    async with sessionmaker() as s, s.begin():  # before the first policy version (2020)
        await s.execute(
            text(
                "UPDATE check_request SET window_start = '2019-03-04', window_end = '2019-03-08' "
                "WHERE id = :i"
            ),
            {"i": ids["read"]},
        )
    view = await service.read_request(driver, SUPERVISOR, ids["read"], settings=settings)
    assert view.precheck is None
    assert (await _old_path(sessionmaker, SUPERVISOR, ids["read"], settings))[1] is None
    r = await client.get(f"/v1/check-requests/{ids['read']}", headers=world.supervisor)
    assert r.status_code == 200
    assert r.json()["precheck"] is None
    assert r.json()["window"] == {"start": "2019-03-04", "end": "2019-03-08"}


async def test_sql_bounds_are_load_enterprise_rows_bounds(
    world: World, sessionmaker: async_sessionmaker[AsyncSession], driver: Any
) -> None:
    """Inspections just inside and just outside the window conflict_facts is asked for."""
    uscc, year = world.usccs[1], 2026
    lo = date(year, 1, 1) - timedelta(days=366)  # 2024-12-31
    since, hi = lo - timedelta(days=366), date(year, 12, 31) + timedelta(days=366)
    day = timedelta(days=1)
    windows = {
        "from since, ending at lo": (since, lo),
        "before since": (since - day, lo + timedelta(days=200)),
        "ending before lo": (lo - timedelta(days=200), lo - day),
        "starting at hi": (hi, hi + timedelta(days=4)),
        "starting after hi": (hi + day, hi + timedelta(days=4)),
    }
    made = {}
    async with sessionmaker() as s, s.begin():
        for label, (start, end) in windows.items():
            made[label] = (
                await s.execute(
                    text(
                        "INSERT INTO inspection (enterprise_uscc, kind, status, agency_code, "
                        "year, window_start, window_end) VALUES (:u, 'planned', 'scheduled', "
                        "'SCJG', :y, :s, :e) RETURNING id"
                    ),
                    {"u": uscc, "y": start.year, "s": start, "e": end},
                )
            ).scalar_one()
    sql = (
        "SELECT f.* FROM (SELECT $1::bpchar AS u, $2::int AS y) a "
        f"LEFT JOIN LATERAL {enterprise_rows_call('a.u', 'a.y')} f ON true"
    )
    loaded = facts_of(await driver.fetchrow(sql, uscc, year))
    assert loaded is not None
    assert {r.fact.id for r in loaded.inspections} == {
        made["from since, ending at lo"],
        made["starting at hi"],
    }
    async with sessionmaker() as s:
        for y in (year - 1, year, year + 1):
            assert facts_of(await driver.fetchrow(sql, uscc, y)) == await load_enterprise_rows(
                s, uscc, y
            )
    assert facts_of(await driver.fetchrow(sql, None, year)) is None
    assert facts_of(await driver.fetchrow(sql, "9" * 18, year)) is None


@pytest.mark.parametrize(
    "viewer", [SUPERVISOR, SCJG_APPROVER, YJGL_APPROVER], ids=["supervisor", "scjg", "yjgl"]
)
async def test_queue_in_one_statement_gives_each_step_by_step_precheck(
    client: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    driver: Any,
    viewer: Principal,
) -> None:
    ids = await _history(client, world)
    extra = await _file(client, world.scheduler, request_body(world.usccs[1]))
    views, more = await service.pending_queue(driver, viewer, settings=settings, limit=100)
    expected = {
        SUPERVISOR: [ids["other"], ids["read"], extra],
        SCJG_APPROVER: [ids["read"], extra],
        YJGL_APPROVER: [ids["other"]],
    }[viewer]
    assert [v.row["id"] for v in views] == expected  # pending only, own agency, oldest first
    assert more is False
    for view in views:
        row, precheck = await _old_path(sessionmaker, viewer, int(view.row["id"]), settings)
        assert view.precheck is not None
        assert view.precheck == precheck
        assert read_of(view.row, view.precheck) == read_of(row, precheck)
    one, more = await service.pending_queue(driver, SUPERVISOR, settings=settings, limit=1)
    assert [v.row["id"] for v in one] == [ids["other"]]
    assert more is True
