-- A partition's projector fences its slots when it starts holding them: it
-- takes a new epoch from fence_epoch and writes it on each slot's
-- checkpoint. Every write of the partition then moves the checkpoints only
-- where they still carry its epoch, in the same transaction as its rows, so
-- a holder that lost its slots without knowing (a frozen process that
-- resumes) writes nothing.
ALTER TABLE {{.schema}}.checkpoint ADD COLUMN epoch bigint NOT NULL DEFAULT 0;
CREATE SEQUENCE {{.schema}}.fence_epoch;
