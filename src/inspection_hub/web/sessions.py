"""Signing in and out of the pages: password check, lockout, sessions with idle/absolute expiry."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.audit.service import record
from inspection_hub.auth.models import UserAccount
from inspection_hub.auth.passwords import verify_password
from inspection_hub.auth.principal import Principal
from inspection_hub.auth.service import principal_of
from inspection_hub.config import Settings
from inspection_hub.kit.timeutil import utcnow
from inspection_hub.web.models import WebSession

TOUCH_EVERY = timedelta(seconds=30)


def session_id_of(token: str) -> str:
    """The stored id of a session cookie's token (SHA-256, hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SignInResult:
    """The outcome of a sign-in attempt; `token` is set only on success."""

    token: str | None = None
    locked: bool = False

    @property
    def ok(self) -> bool:
        """True when the person is signed in."""
        return self.token is not None


async def sign_in(
    session: AsyncSession, settings: Settings, username: str, password: str
) -> SignInResult:
    """Check a password; count failures and lock the account after too many. Never raises.

    Returns instead of raising so the caller's transaction keeps the failure count.
    """
    user = (
        await session.execute(
            select(UserAccount).where(UserAccount.username == username).with_for_update()
        )
    ).scalar_one_or_none()
    now = utcnow()
    if user is None:
        verify_password(None, password)
        return SignInResult()
    if user.locked_until is not None and user.locked_until > now:
        return SignInResult(locked=True)
    if not verify_password(user.password_hash, password):
        user.failed_logins = (user.failed_logins or 0) + 1
        locked = user.failed_logins >= settings.login_max_failures
        if locked:
            user.locked_until = now + timedelta(minutes=settings.login_lockout_minutes)
            user.failed_logins = 0
        await session.flush()
        await record(
            session,
            None,
            "web.sign_in_locked" if locked else "web.sign_in_failed",
            "user_account",
            user.id,
        )
        return SignInResult(locked=locked)
    user.failed_logins = 0
    user.locked_until = None
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            id=session_id_of(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=settings.web_session_absolute_hours),
        )
    )
    await session.flush()
    await record(session, principal_of(user), "web.sign_in", "user_account", user.id)
    return SignInResult(token=token)


async def resolve_session(
    session: AsyncSession, settings: Settings, token: str
) -> tuple[WebSession, Principal] | None:
    """The live session and its person, or None when unknown, idle too long or expired."""
    row = (
        await session.execute(
            select(WebSession, UserAccount)
            .join(UserAccount, UserAccount.id == WebSession.user_id)
            .where(WebSession.id == session_id_of(token))
        )
    ).one_or_none()
    if row is None:
        return None
    web, user = row
    now = utcnow()
    idle = timedelta(minutes=settings.web_session_idle_minutes)
    if web.expires_at <= now or web.last_seen_at + idle <= now:
        await session.execute(delete(WebSession).where(WebSession.id == web.id))
        return None
    if now - web.last_seen_at >= TOUCH_EVERY:
        await session.execute(
            update(WebSession).where(WebSession.id == web.id).values(last_seen_at=now)
        )
    return web, principal_of(user)


async def sign_out(session: AsyncSession, token: str, actor: Principal | None) -> None:
    """End a session (the cookie's token no longer works)."""
    result = await session.execute(
        delete(WebSession).where(WebSession.id == session_id_of(token)).returning(WebSession.id)
    )
    if result.first() is not None and actor is not None:
        await record(session, actor, "web.sign_out", "user_account", actor.user_id)


async def purge_expired(session: AsyncSession, settings: Settings) -> int:
    """Delete sessions past their absolute expiry or idle too long; returns how many."""
    now = utcnow()
    idle = timedelta(minutes=settings.web_session_idle_minutes)
    result = await session.execute(
        delete(WebSession)
        .where((WebSession.expires_at <= now) | (WebSession.last_seen_at <= now - idle))
        .returning(WebSession.id)
    )
    return len(result.all())
