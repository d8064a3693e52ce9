-- Schema version 5 (SQLite): the front-ends serving each pool, as their heartbeats show them.
-- Each `confab serve` writes its row every second (heartbeat_at, in Unix milliseconds by the
-- store's own clock, so that front-ends on machines whose clocks differ still agree on who
-- is alive) and deletes it when it stops cleanly. The rows are not part of the topology: the
-- published topology says which servers a pool should have, this table which ones run.

CREATE TABLE pool_members (
    pool          TEXT NOT NULL REFERENCES pools (name) ON DELETE CASCADE,
    address       TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL,
    PRIMARY KEY (pool, address)
);
