-- A log stream's events that the region's stream no longer held when the
-- deliverer came to read them (retention removed them while the stream was
-- failing, paused or far behind) are counted, never passed over silently:
-- skipped counts the region's messages removed between the stream's
-- position and the oldest one kept (all organizations share the region's
-- stream, so at most that many were this organization's), skipped_through
-- is the last sequence counted (so a gap is counted once, whichever
-- deliverer finds it), last_skipped_at when a gap was last found, and
-- skipped_before the recorded time of the oldest event kept then: the
-- organization's events between the last delivery and that time are lost.
ALTER TABLE logstreams.streams
    ADD COLUMN IF NOT EXISTS skipped         bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS skipped_through bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS last_skipped_at timestamptz,
    ADD COLUMN IF NOT EXISTS skipped_before  timestamptz;
