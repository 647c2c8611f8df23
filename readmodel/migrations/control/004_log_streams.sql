-- log_streams holds each organization's log streams: where they deliver
-- (config, without secrets; the secrets sealed by secretbox apart), what
-- (filter), and how far they got (position, the last stream sequence of
-- the region's AUDIT_<REGION> stream delivered or passed over). The stream
-- is the source of truth for events; this row is the source of truth for a
-- log stream's configuration and progress, and it cannot be rebuilt from
-- the log. It lives in its own schema, outside control, because
-- `projections rebuild` drops control and migrates it again: this
-- migration then finds the table and keeps it (IF NOT EXISTS).
CREATE SCHEMA IF NOT EXISTS logstreams;

CREATE TABLE IF NOT EXISTS logstreams.streams (
    id                text        PRIMARY KEY,
    org_id            text        NOT NULL,
    region            text        NOT NULL,
    name              text        NOT NULL,
    kind              text        NOT NULL,
    config            jsonb       NOT NULL,
    sealed_secrets    bytea,
    filter            jsonb       NOT NULL DEFAULT '{}',
    start_at          timestamptz NOT NULL,
    status            text        NOT NULL CHECK (status IN ('ACTIVE', 'ERROR', 'PAUSED', 'DISABLED')),
    paused_by         text,
    -- version counts configuration changes: a deliverer running an older
    -- version stops and starts again with the new one.
    version           bigint      NOT NULL DEFAULT 1,
    position          bigint      NOT NULL DEFAULT 0,
    -- holder is the deliverer that last claimed the stream (a random
    -- token): one that finds another's token stops before it sends again.
    holder            text,
    last_event_id     text,
    last_delivered_at timestamptz,
    -- lag is how many of the org's events the deliverer last saw waiting
    -- after its position (its consumer's pending count).
    lag               bigint,
    delivered         bigint      NOT NULL DEFAULT 0,
    failed            bigint      NOT NULL DEFAULT 0,
    last_error        text,
    last_error_at     timestamptz,
    failing_since     timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    UNIQUE (org_id, name)
);

CREATE INDEX IF NOT EXISTS streams_org_idx ON logstreams.streams (org_id, created_at, id);
