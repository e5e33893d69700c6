"""The survey planner runs under the event workers: complete via the API, drain, survey exists."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.events.relay import drain
from inspection_hub.kit.timeutil import local_today
from inspection_hub.surveys.service import is_sampled
from tests.plans.helpers import (
    MakeHeaders,
    add_inspectors,
    create_plan,
    import_enterprises,
    item,
    submit_and_draw,
)

PLANNED_RATIO = 0.30  # config/policy.toml [versions.surveys] planned


async def test_inspection_completed_via_api_then_drain_plans_its_survey(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    two_agencies: tuple[str, str],
    make_headers: MakeHeaders,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await import_enterprises(client, admin, 20)
    inspectors = await add_inspectors(client, admin, "SCJG", 2)
    h = await make_headers("scheduler", "SCJG")
    plan = await create_plan(client, h, [item(["SCJG-001"], sampling={"fixed_count": 2})])
    await submit_and_draw(client, h, plan["id"])
    items = (await client.get(f"/v1/inspections?plan_id={plan['id']}", headers=h)).json()["items"]
    sampled, skipped = items[0]["id"], items[1]["id"]
    # The year's sampling seed, chosen so that the first inspection is sampled and the second
    # is not (planned inspections are sampled at 30 %, reproducibly by HMAC(seed, id)).
    seed = next(
        f"{n:064x}"
        for n in range(10_000)
        if is_sampled(f"{n:064x}", sampled, PLANNED_RATIO)
        and not is_sampled(f"{n:064x}", skipped, PLANNED_RATIO)
    )
    async with sessionmaker() as s, s.begin():
        await s.execute(
            text("INSERT INTO survey_sampling_seed (year, seed) VALUES (:y, :s)"),
            {"y": local_today().year, "s": seed},
        )
    body = {
        "visit_date": local_today().isoformat(),
        "inspectors_present": inspectors,
        "outcome": "no_issue",
    }
    for inspection in items:
        r = await client.post(f"/v1/inspections/{inspection['id']}/complete", json=body, headers=h)
        assert r.status_code == 200, r.text
    async with sessionmaker() as s:
        assert (await s.execute(text("SELECT count(*) FROM survey"))).scalar_one() == 0
    assert await drain(sessionmaker, consumers=["survey_planner"]) >= 2
    assert await drain(sessionmaker, consumers=["survey_planner"]) == 0  # nothing left
    async with sessionmaker() as s:
        rows = (
            await s.execute(text("SELECT inspection_id, status, inspection_kind FROM survey"))
        ).all()
        planned_events = (
            await s.execute(text("SELECT count(*) FROM event WHERE type = 'survey.planned'"))
        ).scalar_one()
    assert [tuple(r) for r in rows] == [(sampled, "pending", "planned")]
    assert planned_events == 1
