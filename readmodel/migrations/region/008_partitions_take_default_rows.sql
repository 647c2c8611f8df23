-- ensure_partitions used to fail on a month whose rows already sat in
-- events_default (an event recorded far ahead of the partitions made in
-- advance): Postgres refuses a partition whose range the default partition
-- holds rows of. It now moves those rows into the new month in the same
-- transaction, so nothing in events_default ever blocks a later month and
-- no row is lost or seen twice.
CREATE OR REPLACE FUNCTION {{.schema}}.ensure_partitions(from_ts timestamptz, to_ts timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    m timestamptz := date_trunc('month', from_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    name text;
    cols text;
BEGIN
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
    FROM pg_attribute
    WHERE attrelid = '{{.schema}}.events'::regclass AND attnum > 0 AND NOT attisdropped;
    WHILE m < to_ts LOOP
        name := 'events_' || to_char(m AT TIME ZONE 'UTC', 'YYYY_MM');
        IF to_regclass('{{.schema}}.' || name) IS NULL THEN
            DROP TABLE IF EXISTS pg_temp.moving_rows;
            CREATE TEMP TABLE moving_rows (LIKE {{.schema}}.events) ON COMMIT DROP;
            EXECUTE format('WITH d AS (DELETE FROM {{.schema}}.events_default WHERE occurred_at >= %L AND occurred_at < %L RETURNING %s) '
                           'INSERT INTO pg_temp.moving_rows (%s) SELECT %s FROM d',
                           m, m + interval '1 month', cols, cols, cols);
            EXECUTE format('CREATE TABLE {{.schema}}.%I PARTITION OF {{.schema}}.events FOR VALUES FROM (%L) TO (%L) PARTITION BY HASH (org_id)',
                           name, m, m + interval '1 month');
            PERFORM {{.schema}}.split_by_org(name);
            EXECUTE format('INSERT INTO {{.schema}}.events (%s) SELECT %s FROM pg_temp.moving_rows', cols, cols);
            DROP TABLE pg_temp.moving_rows;
        END IF;
        m := m + interval '1 month';
    END LOOP;
END $$;
