-- The settings read model, folded from stream AUDITCTL.
CREATE TABLE control.org_settings (
    org_id     text        PRIMARY KEY,
    enabled    boolean     NOT NULL,
    region     text        NOT NULL,
    version    bigint      NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by jsonb
);

CREATE TABLE control.checkpoint (
    stream text   PRIMARY KEY,
    seq    bigint NOT NULL
);
