"""Conflict findings and joint inspection proposals.

Revision ID: 0005_conflicts
Revises: 0004_check_requests
Create Date: 2026-11-30 18:40
"""

from collections.abc import Sequence

from inspection_hub.db.migrate import run_sql_script

revision: str = "0005_conflicts"
down_revision: str | None = "0004_check_requests"
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
