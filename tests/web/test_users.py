"""Admins create the people who sign in; the CLI sets passwords."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.auth.models import UserAccount
from inspection_hub.auth.passwords import verify_password
from inspection_hub.auth.service import set_password


async def test_admin_creates_a_person_who_can_then_sign_in(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    agencies: tuple[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    body = {
        "username": "chen.jie",
        "display_name": "陈杰",
        "role": "approver",
        "agency": "SCJG",
        "password": "a-long-enough-secret",
    }
    r = await client.post("/v1/users", json=body, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json() == {
        "id": r.json()["id"],
        "username": "chen.jie",
        "display_name": "陈杰",
        "role": "approver",
        "agency": "SCJG",
    }
    assert "password" not in r.text
    async with sessionmaker() as session:
        user = (
            await session.execute(select(UserAccount).where(UserAccount.username == "chen.jie"))
        ).scalar_one()
        assert user.password_hash is not None
        assert user.password_hash.startswith("$argon2id$")
        assert verify_password(user.password_hash, "a-long-enough-secret")
        assert not verify_password(user.password_hash, "wrong")
    # the same username twice is a conflict; a weak password a 422 naming the field
    assert (await client.post("/v1/users", json=body, headers=admin)).status_code == 409
    weak = body | {"username": "x.y", "password": "short"}
    r = await client.post("/v1/users", json=weak, headers=admin)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "password"


async def test_only_admins_create_people(
    client: httpx.AsyncClient,
    make_headers: Callable[..., Awaitable[dict[str, str]]],
    agencies: tuple[str, str],
) -> None:
    approver = await make_headers("approver", "SCJG")
    body = {
        "username": "sneaky",
        "display_name": "s",
        "role": "admin",
        "password": "a-long-enough-secret",
    }
    assert (await client.post("/v1/users", json=body, headers=approver)).status_code == 403
    assert (await client.post("/v1/users", json=body)).status_code == 401


async def test_set_password_replaces_the_hash_and_clears_the_lockout(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    body = {
        "username": "ops",
        "display_name": "运维",
        "role": "admin",
        "password": "first-secret-1",
    }
    assert (await client.post("/v1/users", json=body, headers=admin)).status_code == 201
    async with sessionmaker() as session, session.begin():
        user = (
            await session.execute(select(UserAccount).where(UserAccount.username == "ops"))
        ).scalar_one()
        user.failed_logins = 3
        await set_password(session, None, username="ops", password="second-secret-2")
    async with sessionmaker() as session:
        user = (
            await session.execute(select(UserAccount).where(UserAccount.username == "ops"))
        ).scalar_one()
        assert user.failed_logins == 0
        assert verify_password(user.password_hash, "second-secret-2")
        assert not verify_password(user.password_hash, "first-secret-1")
