"""Lookups by enterprise through the ORM can use the enterprise-keyed indexes.

asyncpg binds strings as ::VARCHAR by default; against a char(18) column that casts the column and
rules the index out (a sequential scan per lookup, found by `python -m bench`).
inspection_hub/db/types.py binds CHAR parameters as ::BPCHAR; with sequential scans disabled the
planner must then pick an index.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.enterprises.models import Enterprise
from inspection_hub.inspections.models import Inspection, InspectionInspector, InspectionMatter

USCC = "91320402MA1MXXXX0X"


async def _plan(session: AsyncSession, stmt: Select[Any]) -> tuple[str, str]:
    """(the SQL as sent, its plan with sequential scans disabled)."""
    conn = await session.connection()
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = tuple(compiled.params[name] for name in compiled.positiontup or [])
    await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    result = await conn.exec_driver_sql("EXPLAIN " + str(compiled), params)
    return str(compiled), "\n".join(row[0] for row in result)


async def test_enterprise_keyed_lookups_use_an_index(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    statements = [
        select(Enterprise).where(Enterprise.uscc == USCC),
        select(Inspection).where(Inspection.enterprise_uscc == USCC, Inspection.year == 2026),
        select(InspectionMatter).where(
            InspectionMatter.enterprise_uscc.in_([USCC]), InspectionMatter.inspection_id.in_([1])
        ),
        select(InspectionInspector).where(
            InspectionInspector.enterprise_uscc.in_([USCC]),
            InspectionInspector.inspection_id.in_([1]),
        ),
    ]
    async with sessionmaker() as session, session.begin():
        for stmt in statements:
            sql, plan = await _plan(session, stmt)
            assert "::BPCHAR" in sql
            assert "Seq Scan" not in plan, plan
            assert "Index" in plan, plan
