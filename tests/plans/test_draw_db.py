"""The draw through the database: end to end, verification, tampering, infeasible, exemptions."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.config import Settings
from inspection_hub.policy import add_months
from tests.plans.helpers import (
    MakeHeaders,
    add_inspectors,
    create_plan,
    import_enterprises,
    item,
    submit_and_draw,
    this_year,
)


async def _count(s: AsyncSession, sql: str, **params: Any) -> int:
    return int((await s.execute(text(sql), params)).scalar_one())


async def test_draw_end_to_end_verify_export_and_tamper(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    two_agencies: tuple[str, str],
    make_headers: MakeHeaders,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    rows = await import_enterprises(client, admin, 300)
    start = date(this_year(), 1, 1)
    eligible = [r for r in rows if add_months(date.fromisoformat(r["established_on"]), 6) <= start]
    valid = await add_inspectors(client, admin, "SCJG", 6)
    lapsed = await add_inspectors(
        client, admin, "SCJG", 3, valid_until=date(this_year(), 3, 1), prefix="old"
    )
    h = await make_headers("scheduler", "SCJG")
    plan = await create_plan(client, h, [item(["SCJG-001"], sampling={"fixed_count": 20})])
    drawn = await submit_and_draw(client, h, plan["id"])
    assert drawn["status"] == "drawn"
    it = drawn["items"][0]
    assert it["seed"]
    assert it["draw_id"]

    draw = (await client.get(f"/v1/draws/{it['draw_id']}", headers=h)).json()
    assert draw["seed"] == it["seed"]
    assert draw["seed_commitment"] == it["seed_commitment"]
    assert sum(draw["population_size"].values()) == len(eligible)
    assert sum(draw["sample_size"].values()) == 20
    selected = {e["uscc"] for rc in "ABCD" for e in draw["result"]["selected"][rc]}
    assert len(selected) == 20

    inspections = (
        await client.get(f"/v1/inspections?plan_id={plan['id']}&limit=500", headers=h)
    ).json()["items"]
    assert {i["enterprise_uscc"] for i in inspections} == selected
    for i in inspections:
        assert i["status"] == "scheduled"
        assert i["kind"] == "planned"
        assert i["code"]
        ids = {p["id"] for p in i["inspectors"]}
        assert len(ids) == 2
        assert ids <= set(valid)
        assert not ids & set(lapsed)
        assert i["code_url"].endswith(f"/c/{i['code']}")  # the code page people open
    loads: dict[int, int] = {}
    for i in inspections:
        for p in i["inspectors"]:
            loads[p["id"]] = loads.get(p["id"], 0) + 1
    assert max(loads.values()) <= 20

    async with sessionmaker() as s:
        assert (
            await _count(s, "SELECT count(*) FROM event WHERE type = 'inspection.scheduled'") == 20
        )
        assert await _count(s, "SELECT count(*) FROM event WHERE type = 'draw.completed'") == 1
        seqs = await _count(
            s,
            "SELECT count(*) FROM event WHERE type = 'inspection.scheduled' AND aggregate_seq = 1",
        )
        assert seqs == 20
        payload = (
            await s.execute(
                text("SELECT payload FROM event WHERE type = 'inspection.scheduled' LIMIT 1")
            )
        ).scalar_one()
        assert payload["plan_id"] == plan["id"]
        assert payload["agencies"] == ["SCJG"]
        assert payload["categories"] == ["food_safety"]
        assert len(payload["inspectors"]) == 2

    r = await client.get(f"/v1/draws/{it['draw_id']}/verify", headers=h)
    assert r.json() == {"match": True, "differences": []}

    export = (await client.get(f"/v1/draws/{it['draw_id']}/export", headers=h)).json()
    good = tmp_path / "draw.json"
    good.write_text(json.dumps(export), encoding="utf-8")
    cmd = [sys.executable, "-m", "inspection_hub.cli", "draw", "verify"]
    env_path = str(Path(__file__).resolve().parents[2] / "src")  # noqa: ASYNC240 - test setup
    env = {"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}
    ok = await asyncio.to_thread(
        subprocess.run, [*cmd, str(good)], capture_output=True, text=True, env=env, check=False
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "match" in ok.stdout
    export["population"][0][1] = "D" if export["population"][0][1] != "D" else "A"
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(export), encoding="utf-8")
    ko = await asyncio.to_thread(
        subprocess.run, [*cmd, str(bad)], capture_output=True, text=True, env=env, check=False
    )
    assert ko.returncode == 1
    assert "population digest mismatch" in ko.stdout

    # tamper with the stored record: another enterprise recorded as selected
    async with sessionmaker() as s, s.begin():
        await s.execute(
            text(
                "UPDATE draw SET result = jsonb_set(result, '{selected,B,0,uscc}', "
                "'\"91320404MA0000000X\"') WHERE id = :d"
            ),
            {"d": it["draw_id"]},
        )
    r = (await client.get(f"/v1/draws/{it['draw_id']}/verify", headers=h)).json()
    assert r["match"] is False
    assert any("91320404MA0000000X" in d for d in r["differences"])

    # publish; the public sees the plan and the draw
    r = await client.post(f"/v1/plans/{plan['id']}/publish", headers=h)
    assert r.status_code == 200
    assert r.json()["status"] == "published"
    pub = (await client.get(f"/public/v1/plans?year={this_year()}")).json()["items"]
    assert [p["id"] for p in pub] == [plan["id"]]
    assert (await client.get(f"/public/v1/draws/{it['draw_id']}")).json()["seed"] == it["seed"]
    r = await client.get(f"/public/v1/draws/{it['draw_id']}/export")
    assert r.status_code == 200
    assert len(r.json()["population"]) == len(eligible)


async def test_infeasible_roster_is_422_and_writes_nothing(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    two_agencies: tuple[str, str],
    make_headers: MakeHeaders,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await import_enterprises(client, admin, 100)
    await add_inspectors(client, admin, "SCJG", 1)
    await add_inspectors(client, admin, "SCJG", 2, valid_until=date(this_year(), 2, 1), prefix="x")
    h = await make_headers("scheduler", "SCJG")
    plan = await create_plan(client, h, [item(["SCJG-001"], sampling={"fixed_count": 3})])
    assert (await client.post(f"/v1/plans/{plan['id']}/submit", headers=h)).status_code == 200
    r = await client.post(f"/v1/plans/{plan['id']}/draw", headers=h)
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert len({e["uscc"] for e in errors}) == 3
    assert all("no_valid_certificate" in e["reasons"] for e in errors)
    async with sessionmaker() as s:
        assert await _count(s, "SELECT count(*) FROM draw") == 0
        assert await _count(s, "SELECT count(*) FROM inspection") == 0
        assert await _count(s, "SELECT count(*) FROM event WHERE type LIKE 'draw.%'") == 0
        status = (
            await s.execute(text("SELECT status FROM plan WHERE id = :p"), {"p": plan["id"]})
        ).scalar_one()
    assert status == "submitted"


async def test_exemptions_are_honoured(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    two_agencies: tuple[str, str],
    make_headers: MakeHeaders,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    tmp_path: Path,
) -> None:
    rows = await import_enterprises(client, admin, 12, seed=11, risk_class="D")
    new_one, quiet_one, inspected_one = rows[0]["uscc"], rows[1]["uscc"], rows[2]["uscc"]
    y = this_year()
    async with sessionmaker() as s, s.begin():
        await s.execute(
            text("UPDATE enterprise SET established_on = :d WHERE uscc = :u"),
            {"d": date(y, 4, 1), "u": new_one},
        )
    policy = (Path(settings.policy_path())).read_text(encoding="utf-8")  # noqa: ASYNC240 - test setup
    policy += (
        f'\n[[versions.exemptions.no_disturb]]\nuscc = "{quiet_one}"\n'
        f'from_date = {y}-01-01\nto_date = {y}-12-31\nreason = "重点项目建设期"\n'
    )
    custom = tmp_path / "policy.toml"
    custom.write_text(policy, encoding="utf-8")
    old_policy = settings.policy_file
    settings.policy_file = str(custom)
    try:
        await add_inspectors(client, admin, "SCJG", 4)
        h = await make_headers("scheduler", "SCJG")
        # an earlier inspection of the same category by the same agency this year
        first = await create_plan(
            client,
            h,
            [
                item(
                    ["SCJG-001"],
                    sampling={"fixed_count": 1},
                    filter={"districts": [rows[2]["district_code"]]},
                )
            ],
        )
        async with sessionmaker() as s, s.begin():
            # narrow the first plan to exactly the third enterprise
            await s.execute(
                text("UPDATE enterprise SET district_code = '999999' WHERE uscc = :u"),
                {"u": inspected_one},
            )
            await s.execute(
                text("UPDATE plan_item SET districts = '{999999}' WHERE plan_id = :p"),
                {"p": first["id"]},
            )
        await submit_and_draw(client, h, first["id"])
        plan = await create_plan(client, h, [item(["SCJG-001"], sampling={"ratios": {"D": 1}})])
        drawn = await submit_and_draw(client, h, plan["id"])
        draw = (await client.get(f"/v1/draws/{drawn['items'][0]['draw_id']}", headers=h)).json()
    finally:
        settings.policy_file = old_policy
    selected = {e["uscc"] for e in draw["result"]["selected"]["D"]}
    assert len(selected) == 9
    assert not {new_one, quiet_one, inspected_one} & selected
    assert draw["exemptions"]["no_disturb"] == [quiet_one]
    assert (await client.get(f"/v1/draws/{draw['id']}/verify", headers=h)).json()["match"]


async def test_joint_plan_draws_joint_inspections(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    two_agencies: tuple[str, str],
    make_headers: MakeHeaders,
) -> None:
    await import_enterprises(client, admin, 120)
    scjg = set(await add_inspectors(client, admin, "SCJG", 4))
    yjgl = set(await add_inspectors(client, admin, "YJGL", 4))
    h = await make_headers("scheduler", "YJGL")
    plan = await create_plan(
        client,
        h,
        [item(["SCJG-001", "YJGL-001"], sampling={"fixed_count": 8})],
        agencies=["SCJG", "YJGL"],
    )
    await submit_and_draw(client, h, plan["id"])
    items = (await client.get(f"/v1/inspections?plan_id={plan['id']}", headers=h)).json()["items"]
    assert len(items) == 8
    for i in items:
        assert i["kind"] == "joint"
        assert i["agency_code"] == "YJGL"
        assert i["agencies"] == ["SCJG", "YJGL"]
        ids = {p["id"] for p in i["inspectors"]}
        assert ids & scjg
        assert ids & yjgl
        assert {m["code"] for m in i["matters"]} == {"SCJG-001", "YJGL-001"}
    other = await make_headers("scheduler", "SCJG")
    seen = (await client.get(f"/v1/inspections?plan_id={plan['id']}", headers=other)).json()
    assert len(seen["items"]) == 8
