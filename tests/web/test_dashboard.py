"""The dashboard in a real browser: charts drawn from data, tables and CSV beside them."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from typing import cast

import httpx
from playwright._impl._api_structures import SetCookieParam
from playwright.async_api import BrowserContext, Page
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.kit.timeutil import local_today
from tests.reports import monthly_data
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
    assert await canvases.count() == 6
    for i in range(6):
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
    # every key of a Cookie is a SetCookieParam key of a wider type: what cookies() gives,
    # add_cookies takes (TypedDicts are invariant, so mypy cannot see it unaided)
    await no_js.add_cookies(cast(list[SetCookieParam], await context.cookies()))
    plain = await no_js.new_page()
    await plain.goto("/dashboard")
    assert await plain.locator("table[data-chart-table]").count() == 6
    assert await plain.locator("canvas[data-rendered='true']").count() == 0
    await no_js.close()


# The monthly data set's finding kinds as the Chinese column headings, in its KINDS order.
KIND_HEADINGS = [
    "超出年度检查上限",
    "检查了免检企业",
    "可合并的检查",
    "重复检查",
    "回访结果与记录不符",
    "全过程记录核查未通过",
]


async def test_findings_by_month_chart_table_and_csv(
    tab: Page,
    context: BrowserContext,
    sessionmaker: async_sessionmaker[AsyncSession],
    make_person: MakePerson,
    two_agencies: tuple[str, str],
) -> None:
    await monthly_data.build(sessionmaker)
    await make_person("wu.gang", "supervisor", None, "吴刚")
    await sign_in(tab, "wu.gang")
    await tab.goto(f"/dashboard?year={monthly_data.YEAR}")
    section = tab.locator("section.chart", has=tab.locator("#h-findings-by-month"))
    assert await section.locator("h2").inner_text() == "每月发现问题"
    canvas = section.locator("canvas[data-chart='data-findings-by-month']")
    await canvas.and_(tab.locator("[data-rendered='true']")).wait_for()
    # six finding kinds and the completed inspections, twelve months each
    assert await canvas.get_attribute("data-points") == str(7 * 12)
    assert await canvas.get_attribute("aria-label") == "每月发现问题"

    table = section.locator("table[data-chart-table='findings-by-month']")
    heads = await table.locator("thead th").all_inner_texts()
    assert heads == ["月份", *KIND_HEADINGS, "完成检查数"]
    rows = [r.split("\t") for r in await table.locator("tbody tr").all_inner_texts()]
    assert [r[0] for r in rows] == [f"{m}月" for m in range(1, 13)]
    for month, row in enumerate(rows, start=1):
        findings, completed = monthly_data.EXPECTED_ALL[month]
        expected = [str(findings[k]) for k in monthly_data.KINDS] + [str(completed)]
        assert row[1:] == expected, f"{month}月"
    # 23:30 on 31 January in Shanghai: January; the one an hour later: February
    assert rows[0][KIND_HEADINGS.index("全过程记录核查未通过") + 1] == "1"
    assert rows[1][KIND_HEADINGS.index("全过程记录核查未通过") + 1] == "1"
    await shot(tab, "dashboard")

    link = section.get_by_role("link", name="下载本图数据（CSV）")
    href = await link.get_attribute("href")
    assert href == f"/dashboard/findings-by-month.csv?year={monthly_data.YEAR}"
    response = await context.request.get(href)
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/csv")
    table_rows = list(csv.reader(io.StringIO((await response.body()).decode("utf-8-sig"))))
    assert table_rows[0] == heads
    assert table_rows[1:] == rows

    # in English the same table, with English headings and month names
    await tab.goto(f"/dashboard?year={monthly_data.YEAR}&lang=en")
    heads_en = await table.locator("thead th").all_inner_texts()
    assert (heads_en[0], heads_en[-1]) == ("Month", "Inspections completed")
    assert await section.locator("h2").inner_text() == "Findings by month"
    first = (await table.locator("tbody tr").first.inner_text()).split("\t")
    assert first == ["Jan", *rows[0][1:]]


async def test_findings_by_month_of_an_agency_official_is_their_own(
    tab: Page,
    context: BrowserContext,
    sessionmaker: async_sessionmaker[AsyncSession],
    make_person: MakePerson,
    two_agencies: tuple[str, str],
) -> None:
    await monthly_data.build(sessionmaker)
    await make_person("li.na", "scheduler", "SCJG", "李娜")
    await sign_in(tab, "li.na")
    await tab.goto(f"/dashboard?year={monthly_data.YEAR}")
    table = tab.locator("table[data-chart-table='findings-by-month']")
    heads = await table.locator("thead th").all_inner_texts()
    rows = [r.split("\t") for r in await table.locator("tbody tr").all_inner_texts()]
    totals = {
        m: (sum(int(n) for n in row[1:-1]), int(row[-1]))
        for m, row in enumerate(rows, start=1)
        if any(n != "0" for n in row[1:])
    }
    assert totals == monthly_data.EXPECTED_SCJG
    assert "超出年度检查上限" not in heads  # YJGL's finding kind only
    response = await context.request.get(
        f"/dashboard/findings-by-month.csv?year={monthly_data.YEAR}"
    )
    assert list(csv.reader(io.StringIO((await response.body()).decode("utf-8-sig"))))[1:] == rows
