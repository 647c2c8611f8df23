-- The Merkle tree of each organization's log (RFC 6962 / RFC 9162), a
-- projection like every other table here: each event row is a leaf, numbered
-- in stream order per organization, and the leaf is the message data exactly
-- as the stream holds it (kept in events.record).
--
-- Rows projected before this migration have no leaf index, and the tree
-- needs the bytes and the order of every message, which only the stream has.
-- So this migration empties the read model and the projector projects the
-- stream again from its first message, building each tree as it goes: the
-- same path a rebuild takes, so an upgraded read model and a rebuilt one
-- are the same. Until it has caught up, /readyz reports the lag.
TRUNCATE {{.schema}}.events, {{.schema}}.event_ids, {{.schema}}.checkpoint,
    {{.schema}}.quarantine, {{.schema}}.reconciliation;

ALTER TABLE {{.schema}}.events
    ADD COLUMN leaf_index bigint, -- the event's leaf in its organization's tree
    ADD COLUMN record     bytea;  -- the leaf: the message data as stored in the stream

-- tree_hashes holds the tree's stored hashes as golang.org/x/mod/sumdb/tlog
-- numbers them (tlog.StoredHashIndex): about two per leaf. They never change
-- once written; any tree size's root and proofs are computed from them.
CREATE TABLE {{.schema}}.tree_hashes (
    org_id text   NOT NULL,
    idx    bigint NOT NULL,
    hash   bytea  NOT NULL,
    PRIMARY KEY (org_id, idx)
);

-- tree_size is how many leaves each organization's tree has.
CREATE TABLE {{.schema}}.tree_size (
    org_id text   PRIMARY KEY,
    size   bigint NOT NULL
);

-- checkpoints are the signed tree heads issued for each organization, as
-- kept in stream AUDITLOG_CHECKPOINTS (seq is the message's sequence there).
CREATE TABLE {{.schema}}.checkpoints (
    org_id    text        NOT NULL,
    tree_size bigint      NOT NULL,
    root_hash bytea       NOT NULL,
    note      text        NOT NULL,
    issued_at timestamptz NOT NULL,
    seq       bigint      NOT NULL,
    PRIMARY KEY (org_id, tree_size)
);
