-- Cheaper writes, same reads. A category filter is now a filter on the
-- category's types, served by events_type_idx, so the category index only
-- cost every insert. Search text no longer repeats the type and its
-- description (search matches those by type), which shrinks what the
-- trigram index stores per row; rows written before keep the longer text,
-- which matches the same events.
DROP INDEX {{.schema}}.events_category_idx;
