"""Test fixtures: a real PostgreSQL database per run, migrated once; tables emptied per test."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.auth.principal import Role
from inspection_hub.auth.service import create_token, get_or_create_user
from inspection_hub.config import Settings
from inspection_hub.db.migrate import upgrade_to_head_async
from inspection_hub.main import create_app
from tests.fixtures.database import TestDatabase

TEST_PEPPER = "test-pepper-" + "x" * 40


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """A freshly created, migrated database for this run."""
    db = TestDatabase()
    url = await db.create()
    await upgrade_to_head_async(url)
    yield url
    await db.drop()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Test settings: private callback URLs allowed (local receivers), no background workers."""
    data_dir: Path = tmp_path_factory.mktemp("data")
    return Settings(
        env="test",
        data_dir=data_dir,
        token_pepper=TEST_PEPPER,
        session_secret="test-session-secret-" + "y" * 40,
        allow_private_callback_urls=True,
        workers_enabled=False,
        scheduler_enabled=False,
        # each app's startup would collect the whole test process's heap (D32's own test on)
        gc_freeze_after_startup=False,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings, database_url: str) -> AsyncIterator[Any]:
    """The application with its lifespan running."""
    application = create_app(settings, database_url)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def dsn(database_url: str, sessionmaker: Any) -> str:
    """The test database as an asyncpg DSN (the app is started first, as tables get emptied)."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def sessionmaker(app: Any) -> async_sessionmaker[AsyncSession]:
    """The app's session factory (for arranging data and checking the database)."""
    factory: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    return factory


@asynccontextmanager
async def private_client(application: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A test's own app, lifespan running, with a client that turns app errors into 500s."""
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture(autouse=True)
async def _clean_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Empty every table after each test that used the database."""
    uses_db = "database_url" in request.fixturenames
    factory: async_sessionmaker[AsyncSession] | None = (
        request.getfixturevalue("sessionmaker") if uses_db else None
    )
    yield
    if factory is None:
        return
    # A served app of the proof suite (module-scoped) may still be running its scheduler while
    # its module's last test is cleaned up: TRUNCATE then takes its locks table by table while
    # that process reads several tables, and PostgreSQL ends one of the two as a deadlock. The
    # TRUNCATE is the one to try again.
    for attempt in range(5):
        try:
            await _truncate_all(factory)
            return
        except DBAPIError as exc:
            if "deadlock detected" not in str(exc) or attempt == 4:
                raise


async def _truncate_all(factory: async_sessionmaker[AsyncSession]) -> None:
    async with factory() as session:
        tables = (
            await session.execute(
                text(
                    "SELECT string_agg(format('%I', tablename), ', ') FROM pg_tables "
                    "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            )
        ).scalar_one()
        await session.execute(text("SET session_replication_role = replica"))
        await session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        await session.execute(text("ALTER SEQUENCE audit_log_id_seq RESTART"))
        await session.execute(text("ALTER SEQUENCE audit_log_pending_seq RESTART"))
        await session.execute(text("SET session_replication_role = DEFAULT"))
        await session.commit()


_counter = itertools.count(1)


@pytest.fixture
def make_headers(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> Callable[..., Awaitable[dict[str, str]]]:
    """Create a person with a role (and agency) and return Authorization headers for them."""

    async def _make(
        role: str, agency: str | None = None, name: str | None = None
    ) -> dict[str, str]:
        username = name or f"{role}-{agency or 'all'}-{next(_counter)}"
        async with sessionmaker() as session, session.begin():
            user = await get_or_create_user(
                session, username=username, role=Role(role), agency_code=agency
            )
            token, _ = await create_token(session, user=user, pepper=TEST_PEPPER)
        return {"Authorization": f"Bearer {token}"}

    return _make


@pytest.fixture
async def admin(make_headers: Callable[..., Awaitable[dict[str, str]]]) -> dict[str, str]:
    """Headers of an admin."""
    return await make_headers("admin")


@pytest.fixture
async def two_agencies(client: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, str]:
    """Agencies SCJG and YJGL with one matter each."""
    for code, name, matter, category in (
        ("SCJG", "区市场监管局", "SCJG-001", "food_safety"),
        ("YJGL", "区应急管理局", "YJGL-001", "work_safety"),
    ):
        r = await client.post("/v1/agencies", json={"code": code, "name": name}, headers=admin)
        assert r.status_code == 201, r.text
        r = await client.post(
            f"/v1/agencies/{code}/matters",
            json={"code": matter, "name": name + "检查", "category": category},
            headers=admin,
        )
        assert r.status_code == 201, r.text
    return "SCJG", "YJGL"
