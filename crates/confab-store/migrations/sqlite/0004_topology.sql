-- Schema version 4 (SQLite): topology documents. Sites get a table of their own; a pool gains
-- its paired pool and the ordered list of its front-ends' SIP addresses; every published
-- document is kept as one version.
--
-- Servers live in a child table rather than a text column so that the store itself holds the
-- rule that one SIP address belongs to one pool (UNIQUE address): two pools claiming the same
-- front-end would split its users' requests between them. Rows go with their pool.

CREATE TABLE sites (
    name         TEXT PRIMARY KEY,
    description  TEXT,
    created_at   INTEGER NOT NULL
);
-- The stopgap let a pool name a site that no table held: keep those sites.
INSERT INTO sites (name, description, created_at)
    SELECT site, NULL, MIN(created_at) FROM pools WHERE site IS NOT NULL GROUP BY site;

ALTER TABLE pools ADD COLUMN pair TEXT;

CREATE TABLE pool_servers (
    pool      TEXT NOT NULL REFERENCES pools (name) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    address   TEXT NOT NULL UNIQUE,
    PRIMARY KEY (pool, position)
);

CREATE TABLE topology_versions (
    version       INTEGER PRIMARY KEY,
    document      TEXT NOT NULL,
    published_at  INTEGER NOT NULL,
    published_by  TEXT NOT NULL,
    comment       TEXT
);
