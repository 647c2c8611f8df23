-- retention_drops keeps every expired month removed from this read model:
-- every instance reports the same counts from it, and reconciliation knows
-- which events are gone on purpose (those that occurred before the end of
-- the latest month dropped), so it does not call their messages gaps.
CREATE TABLE {{.schema}}.retention_drops (
    stream     text        NOT NULL,
    month      timestamptz NOT NULL, -- first instant of the month, UTC
    partitions bigint      NOT NULL, -- month partitions dropped (0 when only events_default held the month)
    events     bigint      NOT NULL, -- event rows removed with the month
    event_ids  bigint      NOT NULL, -- event_ids rows of the month removed
    dropped_at timestamptz NOT NULL, -- the last time anything of the month was removed
    PRIMARY KEY (stream, month)
);
