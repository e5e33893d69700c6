"""The dashboard in a real browser: charts drawn from data, tables and CSV beside them."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable

import httpx
from playwright.async_api import BrowserContext, Page

from inspection_hub.kit.timeutil import local_today
from tests.web.conftest import shot, sign_in
from tests.web.test_scheduler_and_codes import _drawn_plan

MakePerson = Callable[..., Awaitable[str]]
MakeHeaders = Callable[..., Awaitable[dict[str, str]]]


async def test_dashboard_draws_every_chart_with_its_table_and_csv(
    tab: Page,
    context: BrowserContext,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    make_headers: MakeHeaders,
    make_person: MakePerson,
    two_agencies: tuple[str, str],
) -> None:
    _, items, h = await _drawn_plan(client, admin, make_headers, 3)
    done = items[0]
    r = await client.post(
        f"/v1/inspections/{done['id']}/complete",
        json={
            "visit_date": local_today().isoformat(),
            "inspectors_present": [p["id"] for p in done["inspectors"]],
            "outcome": "no_issue",
        },
        headers=h,
    )
    assert r.status_code == 200, r.text

    await make_person("wu.gang", "supervisor", None, "吴刚")
    await sign_in(tab, "wu.gang")
    await tab.goto("/dashboard")
    await tab.wait_for_selector("canvas[data-rendered='true']")
    canvases = tab.locator("canvas[data-chart]")
    assert await canvases.count() == 5
    for i in range(5):
        canvas = canvases.nth(i)
        assert await canvas.get_attribute("data-rendered") == "true"
        points = int(await canvas.get_attribute("data-points") or 0)
        if await canvas.get_attribute("data-chart") == "data-findings-by-kind":
            assert points == 0  # no findings yet: an empty chart, and the table says so
        else:
            assert points > 0
    # the canvas is really painted (not blank)
    painted = await tab.evaluate(
        """() => {
            const sel = "canvas[data-chart='data-inspections-per-enterprise']";
            const c = document.querySelector(sel);
            const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < px.length; i += 4) { if (px[i] > 0) n++; }
            return n;
        }"""
    )
    assert painted > 100

    table = tab.locator("table[data-chart-table='execution-rate']")
    rows = await table.locator("tbody tr").all_inner_texts()
    assert any("区市场监管局" in row and "100" in row for row in rows)
    per_enterprise = await tab.locator(
        "table[data-chart-table='inspections-per-enterprise'] tbody tr"
    ).all_inner_texts()
    assert per_enterprise[0].split("\t")[0] == "1 次"
    assert "3" in per_enterprise[0].split("\t")  # three enterprises inspected once by SCJG
    await shot(tab, "dashboard")

    response = await context.request.get("/dashboard/inspections-per-enterprise.csv")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/csv")
    text = (await response.body()).decode("utf-8-sig")
    table_rows = list(csv.reader(io.StringIO(text)))
    assert table_rows[0] == ["类别", "区市场监管局", "区应急管理局"]
    assert table_rows[1] == ["1 次", "3", "0"]
    assert len(table_rows) == 5

    # without JavaScript the numbers are still there as tables
    no_js = await context.browser.new_context(  # type: ignore[union-attr]
        base_url=tab.url.split("/dashboard")[0], java_script_enabled=False
    )
    await no_js.add_cookies(await context.cookies())
    plain = await no_js.new_page()
    await plain.goto("/dashboard")
    assert await plain.locator("table[data-chart-table]").count() == 5
    assert await plain.locator("canvas[data-rendered='true']").count() == 0
    await no_js.close()
