"""`conflict_facts` returns at most one row: say so to the planner (ROWS 1, not the default 1000).

With the default estimate, a statement that joins the function's result to anything else (the
check-request submission, which reads the facts and inserts the request in one statement) was
estimated at a thousand times its real size, and PostgreSQL never found the cached generic plan
cheaper than planning afresh: it re-planned the statement on every execution
(`pg_prepared_statements.custom_plans` grew by one per call, `generic_plans` stayed 0), which
cost the database as much CPU as running it. With ROWS 1 it switches to the generic plan after
the usual five custom ones.

Revision ID: 0011_conflict_facts_rows
Revises: 0010_event_index
Create Date: 2026-11-30 22:40
"""

from collections.abc import Sequence

from inspection_hub.db.migrate import run_sql_script

revision: str = "0011_conflict_facts_rows"
down_revision: str | None = "0010_event_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIGNATURE = "conflict_facts(bpchar, date, date, date, boolean, bigint[], boolean, bigint[], date, text, text)"

UPGRADE = f"ALTER FUNCTION {_SIGNATURE} ROWS 1;"

DOWNGRADE = f"ALTER FUNCTION {_SIGNATURE} ROWS 1000;"


def upgrade() -> None:
    run_sql_script(UPGRADE)


def downgrade() -> None:
    run_sql_script(DOWNGRADE)
