"""Page sign-in sessions.

Revision ID: 0007_web
Revises: 0006_surveys
Create Date: 2026-11-30 19:00
"""

from collections.abc import Sequence

from inspection_hub.db.migrate import run_sql_script

revision: str = "0007_web"
down_revision: str | None = "0006_surveys"
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
