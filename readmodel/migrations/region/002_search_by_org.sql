-- Free-text search is always within one org: a GIN index led by org_id
-- (btree_gin) intersects org and trigrams inside the index, instead of
-- collecting every org's matches and filtering afterwards.
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX events_org_search_idx ON {{.schema}}.events USING gin (org_id, search_text gin_trgm_ops);
DROP INDEX {{.schema}}.events_search_idx;
