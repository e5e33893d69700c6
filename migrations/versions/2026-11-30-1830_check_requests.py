"""Check requests (unplanned checks), decisions and idempotency keys.

Revision ID: 0004_check_requests
Revises: 0003_plans
Create Date: 2026-11-30 18:30
"""

from collections.abc import Sequence

from inspection_hub.db.migrate import run_sql_script

revision: str = "0004_check_requests"
down_revision: str | None = "0003_plans"
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
