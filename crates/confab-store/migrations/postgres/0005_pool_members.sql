-- Schema version 5 (PostgreSQL): the front-ends serving each pool; the same table as
-- migrations/sqlite/0005_pool_members.sql, in PostgreSQL's types.

CREATE TABLE pool_members (
    pool          TEXT NOT NULL REFERENCES pools (name) ON DELETE CASCADE,
    address       TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    heartbeat_at  BIGINT NOT NULL,
    PRIMARY KEY (pool, address)
);
