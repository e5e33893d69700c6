"""Scheduler's pages and the inspection code page, in a real browser."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from playwright.async_api import Browser, Page

from tests.plans.helpers import (
    add_inspectors,
    create_plan,
    import_enterprises,
    item,
    submit_and_draw,
)
from tests.web.conftest import shot, sign_in

MakePerson = Callable[..., Awaitable[str]]
MakeHeaders = Callable[..., Awaitable[dict[str, str]]]


async def _drawn_plan(
    client: httpx.AsyncClient, admin: dict[str, str], make_headers: MakeHeaders, n: int = 3
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]:
    await import_enterprises(client, admin, 60)
    await add_inspectors(client, admin, "SCJG", 4)
    h = await make_headers("scheduler", "SCJG")
    plan = await create_plan(client, h, [item(["SCJG-001"], sampling={"fixed_count": n})])
    await submit_and_draw(client, h, plan["id"])
    r = await client.get(f"/v1/inspections?plan_id={plan['id']}", headers=h)
    return plan, r.json()["items"], h


async def test_code_page_shows_valid_and_forged_codes_and_confirms_the_start(
    browser: Browser,
    live_server: str,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    make_headers: MakeHeaders,
    two_agencies: tuple[str, str],
) -> None:
    _, items, h = await _drawn_plan(client, admin, make_headers, 1)
    inspection = items[0]
    phone = await browser.new_context(
        base_url=live_server, viewport={"width": 390, "height": 844}, locale="zh-CN"
    )
    tab = await phone.new_page()
    response = await tab.goto(f"/c/{inspection['code']}")
    assert response is not None
    assert response.status == 200
    verdict = tab.locator("[data-verdict]")
    assert await verdict.get_attribute("data-verdict") == "valid"
    assert "有效" in await verdict.inner_text()
    body = await tab.inner_text("main")
    for person in inspection["inspectors"]:
        assert person["certificate_no"] in body
    assert "区市场监管局" in body
    await shot(tab, "code-valid")

    await tab.get_by_role("button", name="确认检查已开始").click()
    await tab.wait_for_load_state()
    assert "已记录检查开始" in await tab.inner_text("main")
    r = await client.get(f"/v1/inspections/{inspection['id']}", headers=h)
    assert r.json()["status"] == "in_progress"
    assert r.json()["code_scanned_at"] is not None

    code = inspection["code"]
    forged = code[:-2] + ("AA" if not code.endswith("AA") else "BB")
    response = await tab.goto(f"/c/{forged}")
    assert response is not None
    assert response.status == 404
    assert await tab.locator("[data-verdict]").get_attribute("data-verdict") == "invalid"
    assert "无效" in await tab.inner_text("main")
    assert await tab.get_by_role("button", name="确认检查已开始").count() == 0
    await shot(tab, "code-invalid")
    await phone.close()


async def test_scheduler_sees_the_verified_draw_prints_codes_and_completes_an_inspection(
    tab: Page,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    make_headers: MakeHeaders,
    make_person: MakePerson,
    two_agencies: tuple[str, str],
) -> None:
    plan, items, h = await _drawn_plan(client, admin, make_headers, 3)
    await make_person("sun.li", "scheduler", "SCJG", "孙丽")
    await sign_in(tab, "sun.li")

    await tab.goto("/plans")
    await tab.get_by_role("link", name=plan["title"]).click()
    await tab.wait_for_load_state()
    await tab.get_by_role("link", name="抽取记录及验证").first.click()
    await tab.wait_for_load_state()
    assert await tab.locator("[data-verified]").get_attribute("data-verified") == "true"
    assert "验证通过" in await tab.inner_text("main")
    await shot(tab, "draw")

    await tab.goto("/inspections/print")
    assert await tab.locator("section.print-card svg").count() == len(items)
    await shot(tab, "inspection-codes-print")

    target = items[0]
    await tab.goto(f"/inspections/{target['id']}")
    # nobody ticked as present, then only one: refused, the reason in Chinese, nothing recorded
    await tab.get_by_label("检查结果", exact=True).select_option("no_issue")
    await tab.get_by_role("button", name="登记办结").click()
    await tab.wait_for_load_state()
    assert "须有相关部门至少两名持证执法人员到场" in await tab.inner_text("main")
    first = target["inspectors"][0]
    await tab.get_by_label(f"{first['name']}（{first['certificate_no']}）").check()
    await tab.get_by_role("button", name="登记办结").click()
    await tab.wait_for_load_state()
    assert "须有相关部门至少两名持证执法人员到场" in await tab.inner_text("main")
    r = await client.get(f"/v1/inspections/{target['id']}", headers=h)
    assert r.json()["status"] == "scheduled"

    for person in target["inspectors"]:  # the form kept the first tick
        await tab.get_by_label(f"{person['name']}（{person['certificate_no']}）").check()
    await tab.get_by_label("检查结果", exact=True).select_option("rectification_ordered")
    await tab.get_by_label("检查情况（选填）").fill("消防通道堆放杂物，已责令整改。")
    await shot(tab, "inspection-complete")
    await tab.get_by_role("button", name="登记办结").click()
    await tab.wait_for_load_state()
    assert "已登记该检查办结" in await tab.inner_text("main")
    r = await client.get(f"/v1/inspections/{target['id']}", headers=h)
    assert r.json()["status"] == "completed"
    assert r.json()["outcome"] == "rectification_ordered"
    assert sorted(p["id"] for p in r.json()["inspectors"] if p["present"]) == sorted(
        p["id"] for p in target["inspectors"]
    )
