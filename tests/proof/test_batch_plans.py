"""Batched result writes find their rows by key, whatever the statistics say (decision D31).

The survey dispatch, the survey callbacks and the webhook dispatcher each write a batch's outcomes
in one `UPDATE … FROM unnest(…)`, guarded by "the row is still pending". After a burst (a year's
surveys sent at once) the table's statistics still say that pending rows are rare, and from its
sixth execution on a connection PostgreSQL may run a statement's generic plan. With the guard
written plainly, that plan read every pending row through the pending rows' partial index and
compared each with every row of the batch: `bench.survey_bench --n 20000` went from 0.09 s to
7 s per batch of 1,000 after its fifth batch. Here each statement runs in its generic plan right
after such a burst, and the rows it reads from the table must be the batch's own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import TextClause

from inspection_hub.surveys.delivery import _RECORD as SURVEY_RECORD
from inspection_hub.surveys.service import _MARK_SENT
from inspection_hub.webhooks.dispatcher import _RECORD as WEBHOOK_RECORD

ROWS = 5000  # enough that one probe per batch row is plainly cheaper than reading the table
BATCH = 200

_SEED = """
INSERT INTO agency (code, name) VALUES ('SCJG', '区市场监管局');
INSERT INTO enterprise (uscc, name, district_code, industry_code, risk_class)
SELECT '91350102' || lpad(n::text, 10, '0'), '企业' || n, '350102', '5211', 'B'
FROM generate_series(1, {rows}) n;
INSERT INTO inspection (enterprise_uscc, id, kind, status, agency_code, year, window_start,
                        window_end, visit_date)
SELECT '91350102' || lpad(n::text, 10, '0'), n, 'unplanned', 'completed', 'SCJG', 2026,
       DATE '2026-03-10', DATE '2026-03-10', DATE '2026-03-10'
FROM generate_series(1, {rows}) n;
INSERT INTO survey (enterprise_uscc, inspection_id, agency_code, year, inspection_kind, status,
                    due_at, callback_url, callback_status)
SELECT '91350102' || lpad(n::text, 10, '0'), n, 'SCJG', 2026, 'unplanned', 'sent',
       TIMESTAMPTZ '2026-03-11 10:00+00', 'https://hooks.example/s', 'none'
FROM generate_series(1, {rows}) n;
INSERT INTO event (type, type_version, aggregate_type, aggregate_id, aggregate_seq, payload)
SELECT 'inspection.completed', 1, 'inspection', n::text, 1, '{{}}'
FROM generate_series(1, {rows}) n;
INSERT INTO webhook_subscription (url, event_types, secret_encrypted, status)
VALUES ('https://hooks.example/w', ARRAY['inspection.completed'], 'x', 'active');
INSERT INTO webhook_delivery (subscription_id, event_id, webhook_id, status)
SELECT (SELECT min(id) FROM webhook_subscription), e.id, 'msg_' || e.id, 'delivered'
FROM event e;
"""

# What the statistics are taken on (almost nothing pending), then the burst.
_BURST = """
UPDATE survey SET status = 'pending', callback_status = 'pending',
                  callback_next_at = TIMESTAMPTZ '2026-03-12 00:00+00';
UPDATE webhook_delivery SET status = 'pending';
"""


@pytest.fixture
async def conn(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database right after the burst (`sessionmaker`: the tables are
    emptied after the test)."""
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await connection.execute(_SEED.format(rows=ROWS))
        await connection.execute("ANALYZE survey, webhook_delivery")
        await connection.execute(_BURST)
        yield connection
    finally:
        await connection.execute("DEALLOCATE ALL")
        await connection.close()


def _positional(stmt: TextClause) -> tuple[str, list[str]]:
    """The statement as asyncpg sends it ($1, $2, …) and its parameters' names in that order."""
    compiled = stmt.compile(dialect=postgresql.asyncpg.dialect())  # type: ignore[no-untyped-call]
    return str(compiled), list(compiled.positiontup or [])


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _generic_plan(
    conn: asyncpg.Connection, stmt: TextClause, params: dict[str, Any]
) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the statement's generic plan with these values (rolled back).

    A generic plan is what `EXECUTE` of an SQL-level prepared statement runs under
    `plan_cache_mode = force_generic_plan`; `EXECUTE` takes no bound parameters, so the values
    go in as literals, each rendered by the server from its parameter's own type.
    """
    sql, names = _positional(stmt)
    types = (await conn.prepare(sql)).get_parameters()
    literals = [
        await conn.fetchval(f"SELECT quote_nullable(CAST($1 AS {t.schema}.{t.name}))", params[name])
        for name, t in zip(names, types, strict=True)
    ]
    await conn.execute(f"PREPARE batch_write AS {sql}")
    try:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        async with conn.transaction():
            raw = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE batch_write(" + ", ".join(literals) + ")"
            )
            raise _Rollback(json.loads(raw)[0]["Plan"])
    except _Rollback as done:
        return done.plan
    finally:
        await conn.execute("RESET plan_cache_mode")
        await conn.execute("DEALLOCATE batch_write")


class _Rollback(Exception):
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan


def _rows_read(plan: dict[str, Any], table: str) -> int:
    """Rows the plan took from `table` (over all its loops), and none thrown away by a join."""
    read = 0
    for node in _nodes(plan):
        assert node.get("Rows Removed by Join Filter", 0) == 0, node
        if node.get("Relation Name") == table and node["Node Type"] != "ModifyTable":
            read += int(node["Actual Rows"]) * int(node["Actual Loops"])
    return read


async def _batch(conn: asyncpg.Connection, sql: str) -> list[asyncpg.Record]:
    return list(await conn.fetch(sql, BATCH))


def _keys(rows: list[asyncpg.Record]) -> dict[str, list[Any]]:
    """The batch's survey keys, as the statements take them."""
    return {"usccs": [r["enterprise_uscc"] for r in rows], "ids": [r["id"] for r in rows]}


async def test_the_survey_dispatch_marks_its_batch_by_key(conn: asyncpg.Connection) -> None:
    rows = await _batch(conn, "SELECT enterprise_uscc, id FROM survey ORDER BY id DESC LIMIT $1")
    now = datetime(2026, 3, 12, tzinfo=UTC)
    plan = await _generic_plan(
        conn,
        _MARK_SENT,
        {
            "now": now,
            **_keys(rows),
            "hashes": [f"{r['id']:064d}" for r in rows],
            "expires": [now] * len(rows),
        },
    )
    assert plan["Plans"][0]["Actual Rows"] == BATCH  # every row of the batch was found
    assert _rows_read(plan, "survey") == BATCH


async def test_survey_callbacks_record_their_batch_by_key(conn: asyncpg.Connection) -> None:
    rows = await _batch(
        conn,
        "SELECT enterprise_uscc, id, callback_attempts FROM survey ORDER BY id DESC LIMIT $1",
    )
    plan = await _generic_plan(
        conn,
        SURVEY_RECORD,
        {
            "now": None,
            **_keys(rows),
            "statuses": ["delivered"] * len(rows),
            "errors": [None] * len(rows),
            "next_ats": [None] * len(rows),
            "attempts": [r["callback_attempts"] for r in rows],
        },
    )
    assert plan["Plans"][0]["Actual Rows"] == BATCH
    assert _rows_read(plan, "survey") == BATCH


async def test_webhook_results_are_recorded_by_key(conn: asyncpg.Connection) -> None:
    ids = [r["id"] for r in await _batch(conn, "SELECT id FROM webhook_delivery LIMIT $1")]
    plan = await _generic_plan(
        conn,
        WEBHOOK_RECORD,
        {
            "ids": ids,
            "statuses": ["delivered"] * len(ids),
            "counted": [True] * len(ids),
            "delays": [0.0] * len(ids),
            "codes": [200] * len(ids),
            "excerpts": [""] * len(ids),
            "errors": [None] * len(ids),
        },
    )
    assert plan["Plans"][0]["Actual Rows"] == BATCH
    assert _rows_read(plan, "webhook_delivery") == BATCH


async def test_a_row_no_longer_pending_or_claimed_again_is_left_alone(
    conn: asyncpg.Connection,
) -> None:
    """The guard itself: a callback answered meanwhile (dead) or claimed again after its lease
    ran out (one more attempt) keeps what the later writer recorded."""
    await conn.execute(
        "UPDATE survey SET callback_attempts = 1 WHERE id IN (1, 2, 3);"
        "UPDATE survey SET callback_status = 'dead' WHERE id = 2;"
        "UPDATE survey SET callback_attempts = 2 WHERE id = 3"
    )
    sql, names = _positional(SURVEY_RECORD)
    rows = await conn.fetch("SELECT enterprise_uscc, id FROM survey WHERE id IN (1, 2, 3)")
    values = {
        "now": None,
        **_keys(list(rows)),
        "statuses": ["delivered"] * 3,
        "errors": [None] * 3,
        "next_ats": [None] * 3,
        "attempts": [1, 1, 1],  # what this batch claimed
    }
    await conn.execute(sql, *(values[name] for name in names))
    after = dict(await conn.fetch("SELECT id, callback_status FROM survey WHERE id IN (1, 2, 3)"))
    assert after == {1: "delivered", 2: "dead", 3: "pending"}
