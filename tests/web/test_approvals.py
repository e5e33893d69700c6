"""The approver's queue in a real browser: pre-check, approve, reject with and without comment."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
from playwright.async_api import Page

from inspection_hub.kit.synth import enterprises
from inspection_hub.kit.timeutil import local_today
from tests.web.conftest import shot, sign_in

MakePerson = Callable[..., Awaitable[str]]
MakeHeaders = Callable[..., Awaitable[dict[str, str]]]


def _body(agency: str, matter: str, uscc: str, basis: str = "complaint") -> dict[str, Any]:
    start = local_today() + timedelta(days=7)
    return {
        "agency": agency,
        "enterprise": uscc,
        "matters": [matter],
        "basis": basis,
        "basis_ref": "投诉编号 2026-118",
        "reason": "群众投诉食品过期",
        "window": {"start": start.isoformat(), "end": (start + timedelta(days=7)).isoformat()},
        "emergency": False,
    }


async def _file(client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> int:
    r = await client.post("/v1/check-requests", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_approver_decides_the_queue_with_the_precheck_beside_each_request(
    tab: Page,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    make_headers: MakeHeaders,
    make_person: MakePerson,
    two_agencies: tuple[str, str],
) -> None:
    rows = [dict(e, established_on="2010-01-01") for e in enterprises(3, seed=11)]
    r = await client.post("/v1/enterprises/import", json={"enterprises": rows}, headers=admin)
    assert r.status_code == 200, r.text
    usccs = [e["uscc"] for e in rows]
    scjg = await make_headers("scheduler", "SCJG")
    # another agency already has a check of the first enterprise in the same week
    yjgl_id = await _file(
        client, await make_headers("scheduler", "YJGL"), _body("YJGL", "YJGL-001", usccs[0])
    )
    r = await client.post(
        f"/v1/check-requests/{yjgl_id}/approve", headers=await make_headers("approver", "YJGL")
    )
    assert r.status_code == 200, r.text
    first = await _file(client, scjg, _body("SCJG", "SCJG-001", usccs[0]))
    second = await _file(client, scjg, _body("SCJG", "SCJG-001", usccs[1], "referral"))
    third = await _file(client, scjg, _body("SCJG", "SCJG-001", usccs[2], "tip_off"))

    await make_person("zhou.hua", "approver", "SCJG", "周华")
    await sign_in(tab, "zhou.hua")
    await tab.get_by_role("link", name="审批").first.click()
    await tab.wait_for_load_state()
    cards = tab.locator("article.request")
    assert await cards.count() == 3
    ids = [await cards.nth(i).get_attribute("data-request-id") for i in range(3)]
    assert ids == [str(first), str(second), str(third)]  # oldest first
    first_card = cards.nth(0)
    text = await first_card.inner_text()
    assert "审批期限" in text
    assert "投诉举报" in text
    assert "YJGL" in text  # this year's inspection by the other agency, in the pre-check
    assert "可合并的其他部门检查" in text
    await shot(tab, "approvals-queue")

    # approve the first
    await first_card.get_by_role("link", name="查看并审批").click()
    await tab.wait_for_load_state()
    await shot(tab, "approval-request")
    await tab.get_by_role("button", name="批准").click()
    await tab.wait_for_load_state()
    assert "已批准" in await tab.inner_text("main")
    approver_api = await make_headers("approver", "SCJG")
    r = await client.get(f"/v1/check-requests/{first}", headers=approver_api)
    assert r.json()["status"] == "approved"

    # reject the second: refused without a comment, accepted with one
    await tab.goto(f"/approvals/{second}")
    await tab.get_by_role("button", name="驳回").click()
    await tab.wait_for_load_state()
    main = await tab.inner_text("main")
    assert "驳回必须填写意见" in main
    assert await tab.get_by_label("审批意见（驳回时必填）").get_attribute("aria-invalid") == "true"
    await shot(tab, "approval-reject-needs-comment")
    r = await client.get(f"/v1/check-requests/{second}", headers=approver_api)
    assert r.json()["status"] == "pending"
    await tab.get_by_label("审批意见（驳回时必填）").fill("已在本月联合检查中核查，无需另行检查。")
    await tab.get_by_role("button", name="驳回").click()
    await tab.wait_for_load_state()
    assert "已驳回" in await tab.inner_text("main")
    r = await client.get(f"/v1/check-requests/{second}", headers=approver_api)
    assert r.json()["status"] == "rejected"

    # the third is decided elsewhere while the page is open: shown as such, not overwritten
    await tab.goto(f"/approvals/{third}")
    r = await client.post(f"/v1/check-requests/{third}/approve", headers=approver_api)
    assert r.status_code == 200, r.text
    await tab.get_by_label("审批意见（驳回时必填）").fill("不同意")
    await tab.get_by_role("button", name="驳回").click()
    await tab.wait_for_load_state()
    main = await tab.inner_text("main")
    assert "此申请已由他人审批" in main
    assert await tab.locator("h1 [data-status]").get_attribute("data-status") == "approved"
    r = await client.get(f"/v1/check-requests/{third}", headers=approver_api)
    assert r.json()["status"] == "approved"

    # the queue is now empty
    await tab.goto("/approvals")
    assert await tab.locator("article.request").count() == 0
