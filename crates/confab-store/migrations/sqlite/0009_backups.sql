-- Schema version 9 (SQLite): the backups a deployment knows about — written by `confab backup
-- create` or on a schedule — and whether each was verified (restored into a scratch store and
-- compared with its manifest). Not part of a backup itself: it describes files, not state.

CREATE TABLE backups (
    path         TEXT PRIMARY KEY,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    bytes        INTEGER NOT NULL,
    users        INTEGER NOT NULL,
    verified_at  INTEGER,
    verified_ok  INTEGER,
    verify_note  TEXT
);
