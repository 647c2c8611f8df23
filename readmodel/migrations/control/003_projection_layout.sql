-- projection_layout holds how many partitions project each regional stream,
-- one number for the whole deployment: every instance reads it, so they
-- agree on which slots make up a partition. Changing it is an explicit step
-- (auditd projections partitions N), never a side effect of a flag.
CREATE TABLE control.projection_layout (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    partitions integer     NOT NULL CHECK (partitions BETWEEN 1 AND 64),
    changed_at timestamptz NOT NULL DEFAULT now()
);
