"""Browser fixtures: the app served over real HTTP (uvicorn thread) and Debian's Chromium."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.auth.principal import Role
from inspection_hub.auth.service import create_person
from inspection_hub.config import Settings
from inspection_hub.main import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
PASSWORD = "correct-horse-battery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(
    settings: Settings, database_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> Iterator[str]:
    """The application served by uvicorn on a free local port; yields its base URL.

    Depends on `sessionmaker` so the in-process app (used to arrange data and to empty the
    tables after each test) is started before any test, also when a test is run alone.
    """
    app = create_app(settings, database_url)
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium from the Debian package (never a downloaded browser)."""
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def context(browser: Browser, live_server: str) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (no cookies) pointed at the live server."""
    ctx = await browser.new_context(base_url=live_server, locale="zh-CN")
    yield ctx
    await ctx.close()


@pytest.fixture
async def tab(context: BrowserContext) -> Page:
    """A page (tab) in the fresh profile."""
    return await context.new_page()


@pytest.fixture
async def agencies(sessionmaker: async_sessionmaker[AsyncSession]) -> tuple[str, str]:
    """Agencies SCJG and YJGL (reference rows, as the demo loader writes them)."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO agency (code, name) VALUES "
                "('SCJG', '区市场监管局'), ('YJGL', '区应急管理局')"
            )
        )
    return "SCJG", "YJGL"


@pytest.fixture
def make_person(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> Callable[..., Awaitable[str]]:
    """Create an official who signs in with PASSWORD; returns the username."""

    async def _make(
        username: str, role: str, agency: str | None = None, display_name: str | None = None
    ) -> str:
        async with sessionmaker() as session, session.begin():
            await create_person(
                session,
                None,
                username=username,
                display_name=display_name or username,
                role=Role(role),
                agency_code=agency,
                password=PASSWORD,
            )
        return username

    return _make


async def sign_in(tab: Page, username: str, password: str = PASSWORD) -> None:
    """Fill the sign-in form and submit it."""
    await tab.goto("/login")
    await tab.get_by_label("用户名").fill(username)
    await tab.get_by_label("密码").fill(password)
    await tab.get_by_role("button", name="登录").click()
    await tab.wait_for_load_state()


DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


async def shot(tab: Page, name: str) -> None:
    """Take a full-page screenshot; with INSPECTION_HUB_SCREENSHOTS=1 into docs/screenshots/.

    Refresh the README's pictures with
    `INSPECTION_HUB_SCREENSHOTS=1 python -m pytest tests/web`; ordinary runs write to a
    temporary directory so the working tree stays clean. The pictures need a CJK font on the
    machine (Debian: `apt-get install fonts-noto-cjk`), else Chinese shows as empty boxes.
    """
    if os.environ.get("INSPECTION_HUB_SCREENSHOTS") == "1":
        folder = DOCS_SCREENSHOTS
    else:
        folder = Path(tempfile.gettempdir()) / "inspection-hub-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    await tab.screenshot(path=str(folder / f"{name}.png"), full_page=True)
