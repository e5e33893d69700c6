"""The enterprise answers its survey on a phone-sized screen; expired and used links are clear."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from playwright.async_api import Browser
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.events.registry import EventEnvelope
from inspection_hub.surveys import service
from inspection_hub.surveys.handlers import plan_on_completion
from tests.surveys import factories
from tests.web.conftest import shot

COMPLETED = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
VISIT = COMPLETED.date()


async def _survey_link(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Any
) -> tuple[int, str]:
    """A completed inspection whose survey was sent; returns (survey id, link token)."""
    async with sessionmaker() as s, s.begin():
        uscc = await factories.enterprise(s)
        a = await factories.inspector(s, "SCJG", date(2030, 1, 1))
        b = await factories.inspector(s, "SCJG", date(2030, 1, 1))
        iid = await factories.completed_inspection(
            s,
            settings,
            uscc=uscc,
            inspectors=[(a, True), (b, True)],
            window=(VISIT - timedelta(days=5), VISIT + timedelta(days=5)),
            visit_date=VISIT,
            completed_at=COMPLETED,
        )
    envelope = EventEnvelope(
        id=1,
        type="inspection.completed",
        type_version=1,
        aggregate_type="inspection",
        aggregate_id=str(iid),
        aggregate_seq=2,
        enterprise_uscc=uscc,
        agency_codes=["SCJG"],
        payload={"inspection_id": iid, "enterprise": uscc, "kind": "unplanned"},
        occurred_at=COMPLETED,
    )
    async with sessionmaker() as s, s.begin():
        await plan_on_completion(s, envelope)
    async with sessionmaker() as s, s.begin():
        sent = await service.dispatch_due(
            s, public_base_url="http://testserver", now=COMPLETED + timedelta(days=1, seconds=1)
        )
    assert sent == 1
    async with sessionmaker() as s:
        survey_id = (
            await s.execute(text("SELECT id FROM survey WHERE inspection_id = :i"), {"i": iid})
        ).scalar_one()
        payload = (
            await s.execute(
                text(
                    "SELECT payload FROM event WHERE type = 'survey.link_issued' "
                    "AND aggregate_id = :a"
                ),
                {"a": str(survey_id)},
            )
        ).scalar_one()
    return int(survey_id), str(payload["token"])


async def test_enterprise_answers_on_a_phone_then_the_link_is_used(
    browser: Browser,
    live_server: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Any,
    two_agencies: tuple[str, str],
) -> None:
    survey_id, token = await _survey_link(sessionmaker, settings)
    phone = await browser.new_context(
        base_url=live_server, viewport={"width": 390, "height": 844}, locale="zh-CN", has_touch=True
    )
    tab = await phone.new_page()
    response = await tab.goto(f"/s/{token}")
    assert response is not None
    assert response.status == 200
    main = await tab.inner_text("main")
    assert "区市场监管局" in main  # what the record says
    assert "2" in main
    # nothing wider than the phone's screen; touch targets at least 44px high
    width = await tab.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    for label in ("是，来检查过", "否，没有人来"):
        box = await tab.get_by_label(label).locator("xpath=..").bounding_box()
        assert box is not None
        assert box["height"] >= 44
    submit_box = await tab.get_by_role("button", name="提交").bounding_box()
    assert submit_box is not None
    assert submit_box["height"] >= 44
    await shot(tab, "survey-phone")

    # forgetting the required question is refused with a plain message, nothing stored
    await tab.get_by_role("button", name="提交").click()
    await tab.wait_for_load_state()
    assert "请选择一项" in await tab.inner_text("main")

    await tab.get_by_label("是，来检查过").check()
    await tab.get_by_label("哪一天来的？").fill(VISIT.isoformat())
    await tab.get_by_label("来了几名执法人员？").fill("1")
    await tab.get_by_label("大约用了多少分钟？").fill("40")
    await tab.locator("input[name=certificates_shown][value=yes]").check()
    await tab.locator("input[name=burden][value='2']").check()
    await tab.get_by_label("其他想告诉我们的（选填）").fill("检查人员态度很好。")
    await tab.get_by_role("button", name="提交").click()
    await tab.wait_for_load_state()
    assert await tab.locator("[data-survey-state]").get_attribute("data-survey-state") == "thanks"
    await shot(tab, "survey-thanks")

    async with sessionmaker() as s:
        row = (
            (await s.execute(text("SELECT * FROM survey WHERE id = :i"), {"i": survey_id}))
            .mappings()
            .one()
        )
    assert row["status"] == "answered"
    assert row["answer"]["occurred"] == "yes"
    assert row["answer"]["inspector_count"] == 1
    assert row["answer"]["certificates_shown"] is True
    assert row["answer"]["burden"] == 2
    assert row["discrepancies"]  # one inspector seen, two on record

    # the link is used up: a clear page, not the form
    response = await tab.goto(f"/s/{token}")
    assert response is not None
    assert await tab.locator("[data-survey-state]").get_attribute("data-survey-state") == "answered"
    assert await tab.get_by_role("button", name="提交").count() == 0
    # an unknown link
    response = await tab.goto(f"/s/{token[:-3]}zzz")
    assert response is not None
    assert response.status == 404
    assert await tab.locator("[data-survey-state]").get_attribute("data-survey-state") == "unknown"
    await phone.close()


async def test_expired_link_shows_a_clear_page(
    browser: Browser,
    live_server: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Any,
    two_agencies: tuple[str, str],
) -> None:
    survey_id, token = await _survey_link(sessionmaker, settings)
    async with sessionmaker() as s, s.begin():
        await s.execute(
            text("UPDATE survey SET expires_at = now() - interval '1 day' WHERE id = :i"),
            {"i": survey_id},
        )
    phone = await browser.new_context(base_url=live_server, viewport={"width": 390, "height": 844})
    tab = await phone.new_page()
    response = await tab.goto(f"/s/{token}")
    assert response is not None
    assert response.status == 410
    assert await tab.locator("[data-survey-state]").get_attribute("data-survey-state") == "expired"
    assert "此链接已过期" in await tab.inner_text("main")
    await shot(tab, "survey-expired")
    await phone.close()
