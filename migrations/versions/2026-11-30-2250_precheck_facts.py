"""`precheck_facts`: the facts of a check request's pre-check, as one plain SQL function.

`conflict_facts` (migration 0005) serves the detector too: an advisory lock, candidates' booked
days and the inspector bookings at other enterprises. The pre-check uses none of that, yet paid
for it on every submission: PL/pgSQL's call and SPI overhead and the executor start-up of every
node of that plan, used or not (a third of the database's CPU per submission under load, by
`perf`). This function returns the same columns (bookings always NULL) from the same rows, and is
`LANGUAGE sql STABLE` with a single SELECT, so PostgreSQL inlines it into the calling statement
and plans it with the rest.

Revision ID: 0012_precheck_facts
Revises: 0011_conflict_facts_rows
Create Date: 2026-11-30 22:50
"""

from collections.abc import Sequence

from inspection_hub.db.migrate import run_sql_script

revision: str = "0012_precheck_facts"
down_revision: str | None = "0011_conflict_facts_rows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = r"""
CREATE FUNCTION precheck_facts(p_uscc bpchar, p_since date, p_until date, p_ends_after date)
RETURNS TABLE (uscc bpchar, risk_class text, established_on date, since date[],
               classes text[], history text, requests text, bookings text)
LANGUAGE sql STABLE
AS $fn$
SELECT e.uscc, e.risk_class::text, e.established_on,
       coalesce(rc.since, '{}'), coalesce(rc.classes, '{}'),
       (SELECT json_agg(h ORDER BY h.id)
          FROM (SELECT i.id, i.agency_code, i.premises_id, i.kind, i.basis, i.status,
                       i.window_start, i.window_end, i.visit_date, i.outcome,
                       i.check_request_id, i.emergency,
                       coalesce(m.categories, '{}') AS categories,
                       coalesce(m.agencies, '{}') AS agencies,
                       coalesce(m.matters, '{}') AS matters,
                       coalesce(p.inspectors, '{}') AS inspectors
                  FROM inspection i
                  LEFT JOIN LATERAL (
                      SELECT array_agg(DISTINCT im.category) AS categories,
                             array_agg(DISTINCT im.agency_code) AS agencies,
                             array_agg(im.matter_code ORDER BY im.matter_code) AS matters
                      FROM inspection_matter im
                      WHERE im.enterprise_uscc = i.enterprise_uscc AND im.inspection_id = i.id
                  ) m ON true
                  LEFT JOIN LATERAL (
                      SELECT array_agg(ii.inspector_id) AS inspectors
                      FROM inspection_inspector ii
                      WHERE ii.enterprise_uscc = i.enterprise_uscc AND ii.inspection_id = i.id
                  ) p ON true
                 WHERE i.enterprise_uscc = e.uscc AND i.window_start >= p_since
                   AND i.window_start <= p_until
                   AND coalesce(i.visit_date, i.window_end) >= p_ends_after) h)::text,
       (SELECT json_agg(r ORDER BY r.id)
          FROM (SELECT c.id, c.agency_code, c.basis, c.window_start, c.window_end,
                       coalesce((SELECT array_agg(DISTINCT mt.category) FROM matter mt
                                 WHERE mt.code = ANY(c.matters)), '{}') AS categories
                  FROM check_request c
                 WHERE c.enterprise_uscc = e.uscc AND c.status = 'pending'
                   AND NOT c.emergency AND c.window_start >= p_since
                   AND c.window_start <= p_until AND c.window_end >= p_ends_after) r)::text,
       NULL::text
FROM enterprise e
LEFT JOIN LATERAL (
    SELECT array_agg(x.valid_from ORDER BY x.valid_from) AS since,
           array_agg(x.risk_class::text ORDER BY x.valid_from) AS classes
    FROM enterprise_risk_class x WHERE x.enterprise_uscc = e.uscc
) rc ON true
WHERE e.uscc = p_uscc
$fn$;
COMMENT ON FUNCTION precheck_facts(bpchar, date, date, date) IS
    'conflict_facts(uscc, since, until, ends_after, true, ...) without locks or bookings, inlinable';
"""

DOWNGRADE = r"""
DROP FUNCTION precheck_facts(bpchar, date, date, date);
"""


def upgrade() -> None:
    run_sql_script(UPGRADE)


def downgrade() -> None:
    run_sql_script(DOWNGRADE)
