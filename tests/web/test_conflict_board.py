"""The supervisor's conflict board, joint inspections and the enterprise history, in a browser."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date

import httpx
from playwright.async_api import Page
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.config import Settings
from tests.conflicts.helpers import add_enterprise, conflicts, run_detector, schedule
from tests.web.conftest import shot, sign_in

MakePerson = Callable[..., Awaitable[str]]


async def _mergeable_pair(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    serial: int,
) -> tuple[str, list[int]]:
    uscc = await add_enterprise(client, admin, serial, "D")
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
        for agency in ("SCJG", "YJGL")
    ]
    return uscc, ids


async def test_supervisor_resolves_a_finding_and_merges_another_into_a_joint_inspection(
    tab: Page,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    make_person: MakePerson,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    two_agencies: tuple[str, str],
) -> None:
    merge_uscc, merge_ids = await _mergeable_pair(client, admin, sessionmaker, settings, 31)
    keep_uscc, _ = await _mergeable_pair(client, admin, sessionmaker, settings, 32)
    await run_detector(sessionmaker)
    (to_merge,) = await conflicts(sessionmaker, merge_uscc)
    (to_justify,) = await conflicts(sessionmaker, keep_uscc)

    await make_person("zheng.yi", "supervisor", None, "郑毅")
    await sign_in(tab, "zheng.yi")
    await tab.get_by_role("link", name="冲突看板").first.click()
    await tab.wait_for_load_state()
    by_kind = await tab.locator("table").first.inner_text()
    assert "可合并的检查" in by_kind
    assert "2" in by_kind
    rows = tab.locator("table", has_text="未处理的冲突").last.locator("tbody tr")
    assert await rows.count() == 2
    await shot(tab, "conflict-board")

    # justified needs a reason: refused without, recorded with
    await tab.goto(f"/conflicts/{to_justify.id}")
    await tab.get_by_label("合理（须说明理由）").check()
    await tab.get_by_role("button", name="处理").click()
    await tab.wait_for_load_state()
    assert "认定为合理时须说明理由" in await tab.inner_text("main")
    assert await tab.locator("h1 [data-status]").get_attribute("data-status") == "open"
    await tab.get_by_label("合理（须说明理由）").check()
    await tab.get_by_label("备注（认定合理时必填）").fill("两部门检查内容不同，且均为投诉核查。")
    await tab.get_by_role("button", name="处理").click()
    await tab.wait_for_load_state()
    assert "该冲突已处理" in await tab.inner_text("main")
    assert await tab.locator("h1 [data-status]").get_attribute("data-status") == "resolved"

    # propose one joint visit for the other, and accept it for all agencies
    await tab.goto(f"/conflicts/{to_merge.id}")
    await tab.get_by_label("牵头部门").select_option("SCJG")
    await tab.get_by_label("检查日期").fill("2026-12-08")
    await tab.get_by_role("button", name="提议").click()
    await tab.wait_for_load_state()
    assert "/joint-inspections/" in tab.url
    assert await tab.locator("h1 [data-status]").get_attribute("data-status") == "proposed"
    await tab.get_by_role("button", name="代表各部门决定同意").click()
    await tab.wait_for_load_state()
    status = await tab.locator("h1 [data-status]").get_attribute("data-status")
    assert status != "proposed"
    await shot(tab, "joint-inspection")
    joint_link = tab.locator("dd a[href^='/inspections/']").last
    joint_id = int((await joint_link.get_attribute("href") or "").rsplit("/", 1)[1])
    assert joint_id not in merge_ids

    # the enterprise's history: the merged originals and the joint visit, the ledger, findings
    await tab.goto(f"/enterprises/{merge_uscc}")
    main = await tab.inner_text("main")
    assert "检查次数台账" in main
    assert "联合检查" in main
    assert "已合并" in main
    assert "可合并的检查" in main
    await shot(tab, "enterprise-history")
