"""PostgreSQL advisory locks, keyed by a namespace and a text key."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def xact_lock(session: AsyncSession, namespace: str, key: str) -> None:
    """Take a transaction-scoped advisory lock (released at commit or rollback)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:ns), hashtext(:key))"),
        {"ns": namespace, "key": key},
    )


async def try_xact_lock(session: AsyncSession, namespace: str, key: str) -> bool:
    """Try a transaction-scoped advisory lock without waiting."""
    result = await session.execute(
        text("SELECT pg_try_advisory_xact_lock(hashtext(:ns), hashtext(:key))"),
        {"ns": namespace, "key": key},
    )
    return bool(result.scalar_one())
