-- Distribute inspection-hub on Citus (run by `inspection-hub citus distribute`, only where the
-- citus extension is available; see docs/scaling.md). Idempotent: tables already distributed are
-- skipped. Run it on the coordinator after `inspection-hub migrate`, before loading bulk data.
--
-- Distribution column: the enterprise key. Every enterprise-keyed table carries `enterprise_uscc`
-- first in its primary key and unique constraints (tests/proof/test_citus_ready.py), so all of
-- one enterprise's inspections, matters, inspectors and findings live on one shard and every
-- conflict rule (caps, 30-day window, duplicate matters) is a single-shard query.
-- Reference tables (small, read everywhere, replicated to every node): agencies, matters,
-- inspectors, accounts, plans and draws. The hash-chained audit log and the outbox stay local
-- to the coordinator: both need one global order.

CREATE EXTENSION IF NOT EXISTS citus;

CREATE OR REPLACE FUNCTION pg_temp.ih_reference(t regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass(t::text) IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = t) THEN
        PERFORM create_reference_table(t);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION pg_temp.ih_distribute(t text, col text, colocate text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass(t) IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = to_regclass(t)) THEN
        PERFORM create_distributed_table(t, col, colocate_with => colocate);
    END IF;
END $$;

-- Reference tables first (distributed tables reference them by foreign key).
SELECT pg_temp.ih_reference('agency');
SELECT pg_temp.ih_reference('matter');
SELECT pg_temp.ih_reference('inspector');
SELECT pg_temp.ih_reference('user_account');
SELECT pg_temp.ih_reference('api_token');
SELECT pg_temp.ih_reference('plan');
SELECT pg_temp.ih_reference('plan_item');
SELECT pg_temp.ih_reference('draw');

-- The enterprise itself anchors the colocation group.
SELECT pg_temp.ih_distribute('enterprise', 'uscc', 'none');

-- Every other table with a NOT NULL enterprise_uscc column, colocated with enterprise. Listed
-- from the catalogue so tables added by later migrations are included.
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN
        SELECT c.table_name
        FROM information_schema.columns c
        JOIN information_schema.tables tb
          ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name
        WHERE c.table_schema = 'public' AND c.column_name = 'enterprise_uscc'
          AND c.is_nullable = 'NO' AND tb.table_type = 'BASE TABLE'
        ORDER BY c.table_name = 'inspection' DESC, c.table_name
    LOOP
        PERFORM pg_temp.ih_distribute(t, 'enterprise_uscc', 'enterprise');
    END LOOP;
END $$;
