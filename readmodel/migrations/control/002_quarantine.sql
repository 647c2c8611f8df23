-- quarantine keeps the stream messages the projector could never apply
-- (not an event, or rows Postgres refuses), so one bad message cannot stop
-- the settings projection and is still there for an operator to read.
CREATE TABLE control.quarantine (
    stream         text        NOT NULL,
    seq            bigint      NOT NULL,
    subject        text        NOT NULL,
    data           bytea       NOT NULL,
    error          text        NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, seq)
);
