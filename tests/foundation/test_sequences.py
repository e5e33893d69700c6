"""The sequences the hot statements name directly are the id columns' own.

Statements call `nextval('inspection_id_seq')` rather than
`nextval(pg_get_serial_sequence('inspection', 'id'))`, which looked the sequence up in the
catalogs on every call (1.5 % of an approval's database CPU). If a migration ever changes an id
column's sequence, the literal names go stale: this test reads each one from the source and
asks the migrated database which column owns it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg

import inspection_hub

NEXTVAL = re.compile(r"nextval\('([^']+)'\)")

OWNERS = """
SELECT s.relname AS sequence, t.relname AS table_name, a.attname AS column_name
FROM pg_class s
JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid AND d.refobjsubid > 0
JOIN pg_class t ON t.oid = d.refobjid
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
WHERE s.relkind = 'S'
"""


async def test_every_named_sequence_belongs_to_its_id_column(
    database_url: str,
    sessionmaker: Any,  # the migrated database (and the fixtures' own set-up order)
) -> None:
    src = Path(inspection_hub.__file__).parent
    named = {m.group(1) for p in src.rglob("*.py") for m in NEXTVAL.finditer(p.read_text("utf-8"))}
    assert {"inspection_id_seq", "check_request_id_seq"} <= named
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        owners = {
            r["sequence"]: (r["table_name"], r["column_name"]) for r in await conn.fetch(OWNERS)
        }
    finally:
        await conn.close()
    for name in sorted(named):
        assert name in owners, f"{name} is not an id column's sequence"
        table, column = owners[name]
        assert name == f"{table}_{column}_seq"
