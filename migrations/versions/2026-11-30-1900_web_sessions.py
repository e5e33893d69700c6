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
CREATE TABLE web_session (
    id char(64) NOT NULL,
    user_id bigint NOT NULL,
    csrf_token varchar(64) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CONSTRAINT pk_web_session PRIMARY KEY (id),
    CONSTRAINT fk_web_session_user_id_user_account FOREIGN KEY (user_id)
        REFERENCES user_account (id) ON DELETE CASCADE
);
CREATE INDEX ix_web_session_user_id ON web_session (user_id);
CREATE INDEX ix_web_session_expires_at ON web_session (expires_at);
"""

DOWNGRADE = r"""
DROP TABLE IF EXISTS web_session;
"""


def upgrade() -> None:
    run_sql_script(UPGRADE)


def downgrade() -> None:
    run_sql_script(DOWNGRADE)
