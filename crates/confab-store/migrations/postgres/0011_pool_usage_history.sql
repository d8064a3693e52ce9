-- Schema version 11 (PostgreSQL): users per pool over time; the same table as
-- migrations/sqlite/0011_pool_usage_history.sql, in PostgreSQL's types.

CREATE TABLE pool_usage_history (
    at     BIGINT NOT NULL,
    pool   TEXT NOT NULL,
    users  BIGINT NOT NULL,
    PRIMARY KEY (at, pool)
);
