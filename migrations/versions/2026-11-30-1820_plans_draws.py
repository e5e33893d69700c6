"""Plans, plan items, draws and inspection code keys.

Revision ID: 0003_plans
Revises: 0002_events
Create Date: 2026-11-30 18:20
"""

from collections.abc import Sequence

from inspection_hub.db.migrate import run_sql_script

revision: str = "0003_plans"
down_revision: str | None = "0002_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = r"""
SELECT 1;
"""

DOWNGRADE = r"""
SELECT 1;
"""


def upgrade() -> None:
    run_sql_script(UPGRADE)


def downgrade() -> None:
    run_sql_script(DOWNGRADE)
