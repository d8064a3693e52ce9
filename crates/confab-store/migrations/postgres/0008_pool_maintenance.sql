-- Schema version 8 (PostgreSQL): pools in maintenance; the same table as
-- migrations/sqlite/0008_pool_maintenance.sql, in PostgreSQL's types.

CREATE TABLE pool_maintenance (
    pool        TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,
    since       BIGINT NOT NULL,
    started_by  TEXT NOT NULL
);
