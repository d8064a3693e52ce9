-- Schema version 4 (PostgreSQL): topology documents; the same tables as
-- migrations/sqlite/0004_topology.sql, in PostgreSQL's types.

CREATE TABLE sites (
    name         TEXT PRIMARY KEY,
    description  TEXT,
    created_at   BIGINT NOT NULL
);
INSERT INTO sites (name, description, created_at)
    SELECT site, NULL, MIN(created_at) FROM pools WHERE site IS NOT NULL GROUP BY site;

ALTER TABLE pools ADD COLUMN pair TEXT;

CREATE TABLE pool_servers (
    pool      TEXT NOT NULL REFERENCES pools (name) ON DELETE CASCADE,
    position  BIGINT NOT NULL,
    address   TEXT NOT NULL UNIQUE,
    PRIMARY KEY (pool, position)
);

CREATE TABLE topology_versions (
    version       BIGINT PRIMARY KEY,
    document      TEXT NOT NULL,
    published_at  BIGINT NOT NULL,
    published_by  TEXT NOT NULL,
    comment       TEXT
);
