"""Event backbone: consumer progress, handler runs, webhook subscriptions and deliveries.

Revision ID: 0002_events
Revises: 0001_foundation
Create Date: 2026-11-30 18:10
"""

from collections.abc import Sequence

from inspection_hub.db.migrate import run_sql_script

revision: str = "0002_events"
down_revision: str | None = "0001_foundation"
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
