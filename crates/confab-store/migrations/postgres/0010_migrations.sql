-- Schema version 10 (PostgreSQL): migrations from legacy systems; the same table as
-- migrations/sqlite/0010_migrations.sql, in PostgreSQL's types.

CREATE TABLE migrations (
    legacy_pool  TEXT PRIMARY KEY,
    system       TEXT NOT NULL,
    plan         TEXT NOT NULL,
    phase        TEXT NOT NULL,
    record       TEXT NOT NULL,
    revision     BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
