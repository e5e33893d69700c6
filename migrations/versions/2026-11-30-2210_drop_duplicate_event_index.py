"""Drop `ix_event_aggregate_seq`: the same columns as the unique constraint `uq_event_aggregate_seq`.

Migration 0006 added it for the outbox's max(aggregate_seq) lookup, which the unique
constraint's index already serves (same columns, same order). Every event insert paid for
maintaining both.

Revision ID: 0010_event_index
Revises: 0009_audit_gapless
Create Date: 2026-11-30 22:10
"""

from collections.abc import Sequence

from inspection_hub.db.migrate import run_sql_script

revision: str = "0010_event_index"
down_revision: str | None = "0009_audit_gapless"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = r"""
DROP INDEX IF EXISTS ix_event_aggregate_seq;
"""

DOWNGRADE = r"""
CREATE INDEX IF NOT EXISTS ix_event_aggregate_seq ON event (aggregate_type, aggregate_id, aggregate_seq);
"""


def upgrade() -> None:
    run_sql_script(UPGRADE)


def downgrade() -> None:
    run_sql_script(DOWNGRADE)
