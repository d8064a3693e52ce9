-- Schema version 9 (PostgreSQL): the backups a deployment knows about; the same table as
-- migrations/sqlite/0009_backups.sql, in PostgreSQL's types.

CREATE TABLE backups (
    path         TEXT PRIMARY KEY,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    bytes        BIGINT NOT NULL,
    users        BIGINT NOT NULL,
    verified_at  BIGINT,
    verified_ok  BIGINT,
    verify_note  TEXT
);
