"""Bind casts for char(n) columns under asyncpg, so enterprise-keyed indexes are used.

SQLAlchemy's asyncpg dialect sends every String parameter as `$1::VARCHAR`. Compared with a
`char(18)` column (every `uscc` / `enterprise_uscc`), PostgreSQL then casts the COLUMN to text and
cannot use the btree index on it: a lookup by enterprise becomes a sequential scan (found by
`python -m bench`, see docs/performance.md). Parameters bound to CHAR columns are sent as
`$1::BPCHAR` (unbounded, so nothing is truncated) instead; `install()` runs once, at import.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import types as sqltypes
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.compiler import compiles


class AsyncpgBpchar(sqltypes.CHAR):
    """CHAR under asyncpg: bound as ::BPCHAR (no length: the dialect casts sized strings to
    VARCHAR, and a sized cast could truncate)."""

    render_bind_cast = True

    def __init__(self, length: int | None = None, collation: str | None = None) -> None:
        super().__init__(None, collation)


@compiles(AsyncpgBpchar, "postgresql")
def _compile_bpchar(type_: AsyncpgBpchar, compiler: Any, **kw: Any) -> str:
    return "BPCHAR"


def install() -> None:
    """Map CHAR to AsyncpgBpchar in the asyncpg dialect (idempotent)."""
    if PGDialect_asyncpg.colspecs.get(sqltypes.CHAR) is not AsyncpgBpchar:
        PGDialect_asyncpg.colspecs = {**PGDialect_asyncpg.colspecs, sqltypes.CHAR: AsyncpgBpchar}


install()
