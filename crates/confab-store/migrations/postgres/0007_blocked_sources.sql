-- Schema version 7 (PostgreSQL): source addresses blocked at ingress; the same table as
-- migrations/sqlite/0007_blocked_sources.sql, in PostgreSQL's types.

CREATE TABLE blocked_sources (
    cidr        TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL
);
