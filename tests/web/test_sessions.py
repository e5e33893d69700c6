"""Page sessions: idle and absolute expiry, sign-out, and the stored id is a hash of the token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.config import Settings
from inspection_hub.kit.timeutil import utcnow
from inspection_hub.web.models import WebSession
from inspection_hub.web.sessions import (
    purge_expired,
    resolve_session,
    session_id_of,
    sign_in,
    sign_out,
)
from tests.web.conftest import PASSWORD

MakePerson = Callable[..., Awaitable[str]]


async def _signed_in(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, username: str
) -> str:
    async with sessionmaker() as s, s.begin():
        result = await sign_in(s, settings, username, PASSWORD)
    assert result.token is not None
    return result.token


async def test_idle_and_absolute_expiry(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    make_person: MakePerson,
    agencies: tuple[str, str],
) -> None:
    await make_person("qian.yu", "approver", "SCJG")
    token = await _signed_in(sessionmaker, settings, "qian.yu")
    async with sessionmaker() as s, s.begin():
        stored = (await s.execute(select(WebSession))).scalar_one()
        assert stored.id == session_id_of(token)
        assert token not in (stored.id, stored.csrf_token)
        resolved = await resolve_session(s, settings, token)
        assert resolved is not None
        assert resolved[1].username == "qian.yu"
        assert await resolve_session(s, settings, token + "x") is None

    # idle longer than the setting: gone
    idle = timedelta(minutes=settings.web_session_idle_minutes, seconds=1)
    async with sessionmaker() as s, s.begin():
        await s.execute(update(WebSession).values(last_seen_at=utcnow() - idle))
    async with sessionmaker() as s, s.begin():
        assert await resolve_session(s, settings, token) is None
        assert (await s.execute(select(WebSession))).first() is None

    # used a moment ago but past the absolute limit: gone as well
    token = await _signed_in(sessionmaker, settings, "qian.yu")
    async with sessionmaker() as s, s.begin():
        await s.execute(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    async with sessionmaker() as s, s.begin():
        assert await resolve_session(s, settings, token) is None


async def test_sign_out_and_purge(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    make_person: MakePerson,
    agencies: tuple[str, str],
) -> None:
    await make_person("feng.bo", "supervisor")
    first = await _signed_in(sessionmaker, settings, "feng.bo")
    second = await _signed_in(sessionmaker, settings, "feng.bo")
    async with sessionmaker() as s, s.begin():
        await sign_out(s, first, None)
        assert await resolve_session(s, settings, first) is None
        assert await resolve_session(s, settings, second) is not None
        await s.execute(update(WebSession).values(expires_at=utcnow() - timedelta(minutes=1)))
        assert await purge_expired(s, settings) == 1
        assert (await s.execute(select(WebSession))).first() is None
