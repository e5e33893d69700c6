"""Wake the event workers from the database: NOTIFY once per statement that writes events.

Every writer of the outbox (one event, many events, COPY of a draw's events) used to send its own
`SELECT pg_notify(...)`: one more round trip per write transaction, a seventh of a check-request
submission. A statement-level trigger sends it inside the writing statement instead; NOTIFY is
transactional (delivered at commit, never for a rolled-back write) and PostgreSQL folds identical
notifications of one transaction into one, so listeners see exactly what they saw before.

Revision ID: 0008_event_notify
Revises: 0007_web
Create Date: 2026-11-30 20:40
"""

from collections.abc import Sequence

from inspection_hub.db.migrate import run_sql_script

revision: str = "0008_event_notify"
down_revision: str | None = "0007_web"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = r"""
CREATE FUNCTION event_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('inspection_hub_events', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER event_notify AFTER INSERT ON event
    FOR EACH STATEMENT EXECUTE FUNCTION event_notify();
"""

DOWNGRADE = r"""
DROP TRIGGER IF EXISTS event_notify ON event;
DROP FUNCTION IF EXISTS event_notify();
"""


def upgrade() -> None:
    run_sql_script(UPGRADE)


def downgrade() -> None:
    run_sql_script(DOWNGRADE)
