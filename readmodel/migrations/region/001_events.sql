-- The read model of one region. {{.schema}} is audit_<region>.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- events is partitioned by month of occurred_at so retention drops whole
-- partitions; rows outside the prepared months land in events_default.
CREATE TABLE {{.schema}}.events (
    org_id       text        NOT NULL,
    id           text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL,
    source       text        NOT NULL,
    type         text        NOT NULL,
    category     text        NOT NULL,
    actor_kind   text        NOT NULL,
    actor_id     text        NOT NULL,
    actor_name   text,
    actor_email  text,
    target_kind  text,
    target_id    text,
    target_name  text,
    ip_address   text,
    user_agent   text,
    request_id   text,
    details      jsonb       NOT NULL,
    search_text  text        NOT NULL,
    stream_seq   bigint      NOT NULL,
    PRIMARY KEY (org_id, occurred_at, id)
) PARTITION BY RANGE (occurred_at);

CREATE TABLE {{.schema}}.events_default PARTITION OF {{.schema}}.events DEFAULT;

-- Every filter path is led by org and ends in the list order, so a page is
-- an index range scan whatever its depth.
CREATE INDEX events_source_idx   ON {{.schema}}.events (org_id, source, occurred_at, id);
CREATE INDEX events_type_idx     ON {{.schema}}.events (org_id, type, occurred_at, id);
CREATE INDEX events_category_idx ON {{.schema}}.events (org_id, category, occurred_at, id);
CREATE INDEX events_actor_idx    ON {{.schema}}.events (org_id, actor_id, occurred_at, id);
CREATE INDEX events_target_idx   ON {{.schema}}.events (org_id, target_kind, target_id, occurred_at, id);
CREATE INDEX events_search_idx   ON {{.schema}}.events USING gin (search_text gin_trgm_ops);

-- event_ids makes an id unique per org across partitions and far beyond the
-- stream's de-duplication window, and locates an event's partition by id.
CREATE TABLE {{.schema}}.event_ids (
    org_id      text        NOT NULL,
    id          text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);

-- checkpoint is the last stream sequence applied, written in the same
-- transaction as the rows it covers.
CREATE TABLE {{.schema}}.checkpoint (
    stream text   PRIMARY KEY,
    seq    bigint NOT NULL
);

-- ensure_partitions creates the monthly partitions covering [from_ts, to_ts).
CREATE FUNCTION {{.schema}}.ensure_partitions(from_ts timestamptz, to_ts timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    m timestamptz := date_trunc('month', from_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    name text;
BEGIN
    WHILE m < to_ts LOOP
        name := 'events_' || to_char(m AT TIME ZONE 'UTC', 'YYYY_MM');
        IF to_regclass('{{.schema}}.' || name) IS NULL THEN
            EXECUTE format('CREATE TABLE {{.schema}}.%I PARTITION OF {{.schema}}.events FOR VALUES FROM (%L) TO (%L)',
                           name, m, m + interval '1 month');
        END IF;
        m := m + interval '1 month';
    END LOOP;
END $$;

SELECT {{.schema}}.ensure_partitions(now() - interval '1 month', now() + interval '3 months');
