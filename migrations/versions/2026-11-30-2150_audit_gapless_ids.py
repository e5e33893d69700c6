"""Audit chain ids without gaps: the next id is the last sealed id plus one, under the chain lock.

The sealer gave each row `nextval('audit_log_id_seq')`. Sequence values are not rolled back, so a
sealing transaction that was aborted (its connection terminated, the process killed) left a gap
in the ids, and `audit verify`, which requires consecutive ids, then reported "the row before it
was deleted, inserted or reordered": a false alarm about tampering (seen once in the crash
tests, which terminate the server's connections under load). The id is now taken from the last
sealed row inside the same advisory lock that orders the chain, so it is rolled back with the
seal. Existing rows are unchanged; the sequence stays (unused) for compatibility.

Revision ID: 0009_audit_gapless
Revises: 0008_event_notify
Create Date: 2026-11-30 21:50
"""

from collections.abc import Sequence

from inspection_hub.db.migrate import run_sql_script

revision: str = "0009_audit_gapless"
down_revision: str | None = "0008_event_notify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = r"""
CREATE OR REPLACE FUNCTION audit_log_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last_id bigint;
    last_hash text;
BEGIN
    -- The one permitted change: sealing a pending row (SET hash = 'seal'), content untouched.
    IF TG_OP = 'UPDATE' AND OLD.id < 0 AND OLD.hash IS NULL AND NEW.hash = 'seal'
       AND NEW.id = OLD.id AND NEW.at = OLD.at
       AND NEW.actor_id IS NOT DISTINCT FROM OLD.actor_id AND NEW.actor_name = OLD.actor_name
       AND NEW.role = OLD.role AND NEW.action = OLD.action
       AND NEW.object_type = OLD.object_type AND NEW.object_id = OLD.object_id
       AND NEW.before IS NOT DISTINCT FROM OLD.before AND NEW.after IS NOT DISTINCT FROM OLD.after
       AND NEW.request_id IS NOT DISTINCT FROM OLD.request_id THEN
        PERFORM pg_advisory_xact_lock(hashtext('inspection_hub.audit_log_chain'));
        SELECT id, hash INTO last_id, last_hash FROM audit_log WHERE id > 0
         ORDER BY id DESC LIMIT 1;
        NEW.id := %s;
        NEW.prev_hash := coalesce(last_hash, repeat('0', 64));
        NEW.hash := audit_row_hash(NEW);
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""

UPGRADE = _FUNCTION.replace("%s", "coalesce(last_id, 0) + 1", 1)
DOWNGRADE = _FUNCTION.replace("%s", "nextval('audit_log_id_seq')", 1)


def upgrade() -> None:
    run_sql_script(UPGRADE)


def downgrade() -> None:
    run_sql_script(DOWNGRADE)
