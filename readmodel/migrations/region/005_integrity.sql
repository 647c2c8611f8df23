-- quarantine keeps the stream messages the projector could never apply
-- (not an event, or rows Postgres refuses), so one bad message cannot stop
-- the region's projection and is still there for an operator to read.
CREATE TABLE {{.schema}}.quarantine (
    stream         text        NOT NULL,
    seq            bigint      NOT NULL,
    subject        text        NOT NULL,
    data           bytea       NOT NULL,
    error          text        NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, seq)
);

-- reconciliation keeps the last comparison of the stream with this read
-- model, so every instance reports the same gaps whichever one ran it.
CREATE TABLE {{.schema}}.reconciliation (
    stream      text        PRIMARY KEY,
    finished_at timestamptz NOT NULL,
    through     bigint      NOT NULL,
    found       bigint      NOT NULL, -- gaps the run found
    gaps        bigint      NOT NULL, -- gaps it left (found less repaired)
    quarantined bigint      NOT NULL,
    unexplained bigint      NOT NULL
);
