-- Schema version 6 (SQLite): change control. The administrators who act on the deployment
-- and their roles; the change records of what they did (class, state, requester, approvals,
-- the operation and what it changed); and the audit log, a hash chain whose head is kept
-- apart so that removing its last entries shows too.
--
-- Change records are `change_records`: `changes` is the change feed that front-ends follow.

CREATE TABLE administrators (
    name        TEXT PRIMARY KEY,
    roles       TEXT NOT NULL,
    token_hash  TEXT NOT NULL,
    enabled     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT
);

CREATE TABLE change_records (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    class           TEXT NOT NULL,
    title           TEXT NOT NULL,
    reason          TEXT NOT NULL,
    impact          TEXT,
    requested_by    TEXT NOT NULL,
    state           TEXT NOT NULL,
    operation       TEXT NOT NULL,
    before_state    TEXT,
    after_state     TEXT,
    snapshot        TEXT,
    rolls_back      INTEGER REFERENCES change_records (id),
    rolled_back_by  INTEGER REFERENCES change_records (id),
    requested_at    INTEGER NOT NULL,
    decided_at      INTEGER,
    implemented_at  INTEGER,
    implemented_by  TEXT,
    review_due      INTEGER,
    reviewed_at     INTEGER,
    reviewed_by     TEXT,
    review_comment  TEXT
);
CREATE INDEX change_records_state ON change_records (state);

CREATE TABLE change_approvals (
    change_id  INTEGER NOT NULL REFERENCES change_records (id) ON DELETE CASCADE,
    approver   TEXT NOT NULL,
    decision   TEXT NOT NULL,
    comment    TEXT,
    at         INTEGER NOT NULL,
    PRIMARY KEY (change_id, approver)
);

CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);

CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
