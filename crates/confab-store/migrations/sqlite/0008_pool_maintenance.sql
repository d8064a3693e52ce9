-- Schema version 8 (SQLite): pools in maintenance. A pool in maintenance is served by its
-- paired pool: its users register, and are reached, there until it leaves maintenance. Kept
-- apart from `pools`, which a topology publication rewrites: maintenance is an operational
-- state, not part of the topology document. Front-ends re-read it when the change feed says
-- `pool.maintenance`.

CREATE TABLE pool_maintenance (
    pool        TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,
    since       INTEGER NOT NULL,
    started_by  TEXT NOT NULL
);
