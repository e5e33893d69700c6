"""The live schema is ready for Citus distribution by enterprise (docs/scaling.md).

Read from pg_catalog after all migrations: every table with a NOT NULL `enterprise_uscc` column
(and `enterprise` itself, keyed by `uscc`) has the key in its primary key and in every unique index,
and foreign keys into enterprise-keyed tables come from enterprise-keyed tables through the key.
Tables with a nullable `enterprise_uscc` cannot be distributed by it (Citus refuses NULL
distribution values); each is named here with where it lives instead, so a new one fails the test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.foundation.test_cli import cli_env

# Tables holding an optional enterprise reference, kept on the coordinator (not distributed).
NOT_DISTRIBUTED = {
    "event": "the outbox needs one global order for its relay cursor; stays on the coordinator",
}

KEYED_TABLES = """
SELECT c.relname AS table_name, a.attnotnull AS not_null
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'enterprise_uscc' AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p')
ORDER BY 1
"""

UNIQUE_INDEXES = """
SELECT i.indexrelid::regclass::text AS index_name, i.indisprimary AS is_primary,
       array_agg(a.attname ORDER BY k.ord) AS columns
FROM pg_index i
JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1::regclass AND i.indisunique
GROUP BY i.indexrelid, i.indisprimary
"""

FOREIGN_KEYS_INTO = """
SELECT con.conname, con.conrelid::regclass::text AS from_table,
       ARRAY(SELECT attname FROM pg_attribute WHERE attrelid = con.conrelid
             AND attnum = ANY (con.conkey)) AS from_columns,
       ARRAY(SELECT attname FROM pg_attribute WHERE attrelid = con.confrelid
             AND attnum = ANY (con.confkey)) AS to_columns
FROM pg_constraint con
WHERE con.contype = 'f' AND con.confrelid = $1::regclass
"""


async def _keyed(conn: asyncpg.Connection) -> tuple[dict[str, str], list[str]]:
    """({distributed table: key column}, [tables with a nullable enterprise_uscc])."""
    rows = await conn.fetch(KEYED_TABLES)
    keyed = {r["table_name"]: "enterprise_uscc" for r in rows if r["not_null"]}
    keyed["enterprise"] = "uscc"
    nullable = [r["table_name"] for r in rows if not r["not_null"]]
    return keyed, nullable


async def test_enterprise_keyed_tables_carry_the_key_in_every_unique_index(
    dsn: str,
) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        keyed, _ = await _keyed(conn)
        assert {"enterprise", "inspection", "inspection_matter"} <= set(keyed)
        violations: list[str] = []
        for table, key in sorted(keyed.items()):
            indexes = await conn.fetch(UNIQUE_INDEXES, table)
            assert any(ix["is_primary"] for ix in indexes), f"{table} has no primary key"
            for ix in indexes:
                if key not in ix["columns"]:
                    kind = "primary key" if ix["is_primary"] else "unique index"
                    violations.append(f"{table}: {kind} {ix['index_name']} {ix['columns']}")
    finally:
        await conn.close()
    assert violations == []


async def test_foreign_keys_into_enterprise_keyed_tables_go_through_the_key(
    dsn: str,
) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        keyed, _ = await _keyed(conn)
        violations: list[str] = []
        for table, key in sorted(keyed.items()):
            for fk in await conn.fetch(FOREIGN_KEYS_INTO, table):
                source = fk["from_table"]
                if source not in keyed:
                    violations.append(f"{fk['conname']}: {source} is not enterprise-keyed")
                elif key not in fk["to_columns"] or keyed[source] not in fk["from_columns"]:
                    violations.append(f"{fk['conname']}: does not go through {key}")
    finally:
        await conn.close()
    assert violations == []


async def test_tables_with_an_optional_enterprise_are_named(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        _, nullable = await _keyed(conn)
    finally:
        await conn.close()
    assert sorted(nullable) == sorted(NOT_DISTRIBUTED)


def test_distribute_script_names_existing_reference_tables() -> None:
    script = (Path(__file__).resolve().parents[2] / "scripts" / "citus_distribute.sql").read_text()
    assert "create_reference_table" in script
    assert "create_distributed_table" in script
    for table in ("agency", "matter", "inspector", "user_account"):
        assert f"ih_reference('{table}')" in script


async def test_cli_refuses_without_citus_and_changes_nothing(
    database_url: str, dsn: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        available = await conn.fetchval(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'citus'"
        )
        before = await conn.fetchval("SELECT count(*) FROM pg_extension")
    finally:
        await conn.close()
    if available:
        pytest.fail("this test expects a server without Citus; run the distribution test instead")
    env = cli_env(database_url, tmp_path)
    result = await _run(env, "citus", "distribute")
    assert result.returncode == 1
    assert "citus extension is not available" in result.stderr
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_extension") == before
    finally:
        await conn.close()


async def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    import asyncio

    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "inspection_hub.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
