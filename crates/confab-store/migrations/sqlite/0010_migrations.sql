-- Schema version 10 (SQLite): migrations from legacy systems, one per legacy pool. The plan
-- (which database, which pools, which test accounts) and the record of every phase (its
-- checks, their evidence, who advanced it and when, rollbacks) are JSON documents written by
-- `confab migrate plan|advance|rollback`; `revision` makes two operators advancing at once
-- conflict instead of overwriting each other.

CREATE TABLE migrations (
    legacy_pool  TEXT PRIMARY KEY,
    system       TEXT NOT NULL,
    plan         TEXT NOT NULL,
    phase        TEXT NOT NULL,
    record       TEXT NOT NULL,
    revision     INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
