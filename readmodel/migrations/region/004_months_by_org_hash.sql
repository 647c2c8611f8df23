-- Each month is split into 8 partitions by hash of org_id. Every query
-- names one org, so it reads one of them; a trigram search reads each
-- trigram's posting list for the orgs of one partition instead of all orgs,
-- which is what made searches slow as the number of orgs grew.
CREATE OR REPLACE FUNCTION {{.schema}}.ensure_partitions(from_ts timestamptz, to_ts timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    m timestamptz := date_trunc('month', from_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    name text;
BEGIN
    WHILE m < to_ts LOOP
        name := 'events_' || to_char(m AT TIME ZONE 'UTC', 'YYYY_MM');
        IF to_regclass('{{.schema}}.' || name) IS NULL THEN
            EXECUTE format('CREATE TABLE {{.schema}}.%I PARTITION OF {{.schema}}.events FOR VALUES FROM (%L) TO (%L) PARTITION BY HASH (org_id)',
                           name, m, m + interval '1 month');
            PERFORM {{.schema}}.split_by_org(name);
        END IF;
        m := m + interval '1 month';
    END LOOP;
END $$;

-- split_by_org creates the 8 org-hash partitions of month partition name.
CREATE FUNCTION {{.schema}}.split_by_org(name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 0..7 LOOP
        EXECUTE format('CREATE TABLE {{.schema}}.%I PARTITION OF {{.schema}}.%I FOR VALUES WITH (MODULUS 8, REMAINDER %s)',
                       name || '_h' || i, name, i);
    END LOOP;
END $$;

-- Months created by earlier migrations are plain tables: rebuild each one
-- split, with its rows. The default partition stays a plain table.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = '{{.schema}}.events'::regclass AND c.relkind = 'r' AND c.relname <> 'events_default'
    LOOP
        EXECUTE format('ALTER TABLE {{.schema}}.events DETACH PARTITION {{.schema}}.%I', r.relname);
        EXECUTE format('ALTER TABLE {{.schema}}.%I RENAME TO %I', r.relname, r.relname || '_unsplit');
        EXECUTE format('CREATE TABLE {{.schema}}.%I PARTITION OF {{.schema}}.events %s PARTITION BY HASH (org_id)', r.relname, r.bound);
        PERFORM {{.schema}}.split_by_org(r.relname);
        EXECUTE format('INSERT INTO {{.schema}}.%I SELECT * FROM {{.schema}}.%I', r.relname, r.relname || '_unsplit');
        EXECUTE format('DROP TABLE {{.schema}}.%I', r.relname || '_unsplit');
    END LOOP;
END $$;
