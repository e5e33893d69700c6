"""Surveys, answers, phone visits and trace checks.

Revision ID: 0006_surveys
Revises: 0005_conflicts
Create Date: 2026-11-30 18:50
"""

from collections.abc import Sequence

from inspection_hub.db.migrate import run_sql_script

revision: str = "0006_surveys"
down_revision: str | None = "0005_conflicts"
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
