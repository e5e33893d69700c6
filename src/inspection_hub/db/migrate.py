"""Running Alembic from the application (serve, migrate, tests)."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.util import await_only

from inspection_hub.paths import migrations_dir


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the bundled scripts and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_to_head(url: str) -> None:
    """Apply all migrations (blocking; call from a thread when a loop is running)."""
    command.upgrade(alembic_config(url), "head")


async def upgrade_to_head_async(url: str) -> None:
    """Apply all migrations without blocking the event loop."""
    await asyncio.to_thread(upgrade_to_head, url)


def head_revisions() -> set[str]:
    """The revision ids the code expects the database to be at."""
    return set(ScriptDirectory.from_config(alembic_config("postgresql://")).get_heads())


def run_sql_script(sql: str) -> None:
    """Run a multi-statement SQL script inside a migration (asyncpg's simple query protocol)."""
    from alembic import op

    raw: Any = op.get_bind().connection.driver_connection
    await_only(raw.execute(sql))
