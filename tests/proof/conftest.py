"""Proof-suite fixtures."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def dsn(database_url: str, sessionmaker: Any) -> str:
    """The test database as an asyncpg DSN (the app is started first, as tables get emptied)."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
