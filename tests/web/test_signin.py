"""Signing in to the pages in a real browser: sessions, lockout, CSRF and the language switch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from playwright.async_api import BrowserContext, Page
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.auth.models import UserAccount
from inspection_hub.web.models import WebSession
from tests.web.conftest import shot, sign_in

MakePerson = Callable[..., Awaitable[str]]


async def test_sign_in_redirects_back_and_sets_a_safe_cookie(
    tab: Page, context: BrowserContext, make_person: MakePerson, agencies: tuple[str, str]
) -> None:
    await make_person("li.na", "approver", "SCJG", "李娜")
    response = await tab.goto("/")
    assert response is not None
    assert "/login" in tab.url
    assert await tab.locator("html").get_attribute("lang") == "zh-Hans"
    await shot(tab, "login")
    await tab.get_by_label("用户名").fill("li.na")
    await tab.get_by_label("密码").fill("correct-horse-battery")
    await tab.get_by_role("button", name="登录").click()
    await tab.wait_for_url("**/")
    assert "您好，李娜" in await tab.inner_text("main")
    cookies = {c["name"]: c for c in await context.cookies()}
    session_cookie = cookies["ih_session"]
    assert session_cookie["httpOnly"] is True
    assert session_cookie["sameSite"] == "Lax"

    await tab.get_by_role("button", name="退出登录").click()
    await tab.wait_for_url("**/login")
    await tab.goto("/")
    assert "/login" in tab.url


async def test_wrong_password_then_lockout_after_five_failures(
    tab: Page,
    make_person: MakePerson,
    agencies: tuple[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await make_person("wang.qiang", "approver", "SCJG")
    for attempt in range(1, 6):
        await sign_in(tab, "wang.qiang", "not-the-password")
        text = await tab.inner_text("main")
        if attempt < 5:
            assert "用户名或密码错误" in text
        else:
            assert "已被锁定 15 分钟" in text
    # the right password no longer works while locked
    await sign_in(tab, "wang.qiang")
    assert "已被锁定" in await tab.inner_text("main")
    assert "/login" in tab.url
    async with sessionmaker() as session:
        user = (
            await session.execute(select(UserAccount).where(UserAccount.username == "wang.qiang"))
        ).scalar_one()
        assert user.locked_until is not None
        sessions = (await session.execute(select(WebSession))).scalars().all()
        assert sessions == []


async def test_forged_post_without_the_token_is_refused(
    live_server: str, make_person: MakePerson, agencies: tuple[str, str]
) -> None:
    await make_person("zhao.min", "approver", "SCJG")
    async with httpx.AsyncClient(base_url=live_server) as c:
        # no CSRF cookie nor field: refused before the password is even checked
        r = await c.post(
            "/login", data={"username": "zhao.min", "password": "correct-horse-battery"}
        )
        assert r.status_code == 403
        assert "ih_session" not in r.cookies
        # a cross-site origin is refused even with a matching token pair
        page = await c.get("/login")
        token = c.cookies["ih_csrf"]
        assert f'value="{token}"' in page.text
        r = await c.post(
            "/login",
            data={"username": "zhao.min", "password": "correct-horse-battery", "csrf_token": token},
            headers={"Origin": "https://evil.example"},
        )
        assert r.status_code == 403
        r = await c.post(
            "/login",
            data={"username": "zhao.min", "password": "correct-horse-battery", "csrf_token": token},
        )
        assert r.status_code == 303
        assert "ih_session" in r.cookies
        # signed in: a form post with the anonymous token instead of the session's is refused
        r = await c.post("/logout", data={"csrf_token": token})
        assert r.status_code == 403


async def test_language_switch_to_english_and_back(tab: Page) -> None:
    await tab.goto("/login")
    assert await tab.get_by_role("heading", level=1).inner_text() == "登录"
    await tab.get_by_role("link", name="English").click()
    await tab.wait_for_load_state()
    assert await tab.get_by_role("heading", level=1).inner_text() == "Sign in"
    assert await tab.locator("html").get_attribute("lang") == "en"
    # the choice is remembered on the next page without ?lang=
    await tab.goto("/login")
    assert await tab.get_by_label("Username").count() == 1
    await tab.get_by_role("link", name="中文").click()
    await tab.wait_for_load_state()
    assert await tab.get_by_role("heading", level=1).inner_text() == "登录"
