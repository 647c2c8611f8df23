-- The trees are kept as tiles (package tiles; C2SP tlog-tiles, height 8)
-- instead of a row per stored hash: tile (level, n) of an organization holds
-- the stored hashes of tree level 8·level numbered n·256 to n·256+255, in
-- order, 32 bytes each; the tile at the tree's right edge is partial (fewer
-- than 256 hashes) and replaced as it fills. Every other stored hash is
-- computed from a tile. tree_hashes held about 260 bytes a leaf, the tiles
-- hold about 32.
CREATE TABLE {{.schema}}.tree_tiles (
    org_id text   NOT NULL,
    level  int    NOT NULL,
    n      bigint NOT NULL,
    data   bytea  NOT NULL,
    PRIMARY KEY (org_id, level, n)
);
-- Hashes do not compress: keep Postgres from trying.
ALTER TABLE {{.schema}}.tree_tiles ALTER COLUMN data SET STORAGE EXTERNAL;

-- tlog.StoredHashIndex, to convert the hashes the old table holds.
CREATE FUNCTION {{.schema}}.stored_hash_index_011(level int, n bigint) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    i bigint := 0;
BEGIN
    FOR l IN 1..level LOOP
        n := 2 * n + 1;
    END LOOP;
    WHILE n > 0 LOOP
        i := i + n;
        n := n >> 1;
    END LOOP;
    RETURN i + level;
END
$$;

INSERT INTO {{.schema}}.tree_tiles (org_id, level, n, data)
SELECT s.org_id, lv.level, k.k >> 8, string_agg(h.hash, ''::bytea ORDER BY k.k)
FROM {{.schema}}.tree_size s
CROSS JOIN generate_series(0, 7) AS lv(level)
CROSS JOIN LATERAL generate_series(0, (s.size >> (8 * lv.level)) - 1) AS k(k)
JOIN {{.schema}}.tree_hashes h
    ON h.org_id = s.org_id AND h.idx = {{.schema}}.stored_hash_index_011(8 * lv.level, k.k)
GROUP BY s.org_id, lv.level, k.k >> 8;

-- Every tree must come through whole: each level holds size >> (8·level)
-- hashes. A tree missing a hash stops the upgrade rather than losing it.
DO $$
DECLARE
    bad text;
BEGIN
    SELECT s.org_id INTO bad
    FROM {{.schema}}.tree_size s CROSS JOIN generate_series(0, 7) AS lv(level)
    WHERE s.size >> (8 * lv.level) <> coalesce((
        SELECT sum(length(t.data)) / 32 FROM {{.schema}}.tree_tiles t
        WHERE t.org_id = s.org_id AND t.level = lv.level), 0)
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'the tree of % lacks stored hashes; tree_hashes is kept, the upgrade stopped', bad;
    END IF;
END
$$;

DROP FUNCTION {{.schema}}.stored_hash_index_011(int, bigint);
DROP TABLE {{.schema}}.tree_hashes;
