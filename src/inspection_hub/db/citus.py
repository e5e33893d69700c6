"""Citus distribution (docs/scaling.md): run scripts/citus_distribute.sql where Citus exists."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from inspection_hub.paths import _pick


def distribute_script() -> Path:
    """The distribution script, in a checkout or inside the wheel."""
    return _pick("_scripts", "scripts") / "citus_distribute.sql"


async def citus_available(conn: asyncpg.Connection) -> bool:
    """True when the server can load the citus extension."""
    found = await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'citus'")
    return found is not None


async def distribute(dsn: str) -> bool:
    """Run the distribution script if Citus is available; return whether it ran."""
    conn = await asyncpg.connect(dsn)
    try:
        if not await citus_available(conn):
            return False
        await conn.execute(distribute_script().read_text(encoding="utf-8"))
        return True
    finally:
        await conn.close()
