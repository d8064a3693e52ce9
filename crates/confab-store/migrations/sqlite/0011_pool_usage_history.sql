-- Schema version 11 (SQLite): users per pool over time, sampled by the front-ends (a sample is
-- written when a pool's count changed since the last one), for the console's chart of a
-- migration. Not part of a backup: it describes the past, not the deployment's state.

CREATE TABLE pool_usage_history (
    at     INTEGER NOT NULL,
    pool   TEXT NOT NULL,
    users  INTEGER NOT NULL,
    PRIMARY KEY (at, pool)
);
