-- Schema version 1 (SQLite): SIP domains, pools, users homed on pools, their credentials,
-- the registrar's write-behind, offline messages and the change feed. Times are Unix seconds.
-- AUTOINCREMENT keeps ids from being reused after a delete: a reused id would let a cache or
-- a deliverer mistake a new record for an old one.

CREATE TABLE domains (
    name        TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
);

CREATE TABLE pools (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('confab', 'legacy')),
    site        TEXT,
    next_hop    TEXT,
    created_at  INTEGER NOT NULL,
    CHECK (kind = 'confab' OR next_hop IS NOT NULL)
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_part     TEXT NOT NULL,
    domain        TEXT NOT NULL REFERENCES domains (name),
    display_name  TEXT,
    pool          TEXT NOT NULL REFERENCES pools (name),
    enabled       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (user_part, domain)
);
CREATE INDEX users_by_pool ON users (pool);
CREATE INDEX users_by_domain ON users (domain);

CREATE TABLE credentials (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    realm      TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    ha1        TEXT NOT NULL,
    PRIMARY KEY (user_id, realm, algorithm)
);

CREATE TABLE registrations (
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    contact      TEXT NOT NULL,
    instance_id  TEXT,
    q            INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    call_id      TEXT NOT NULL,
    cseq         INTEGER NOT NULL,
    path         TEXT,
    source       TEXT,
    transport    TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (user_id, contact)
);
CREATE INDEX registrations_by_expiry ON registrations (expires_at);

CREATE TABLE offline_messages (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    from_uri       TEXT NOT NULL,
    content_type   TEXT NOT NULL,
    body           BLOB NOT NULL,
    received_at    INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    claimed_until  INTEGER
);
CREATE INDEX offline_messages_by_user ON offline_messages (user_id, id);
CREATE INDEX offline_messages_by_expiry ON offline_messages (expires_at);

-- The change feed. change_head holds the last sequence number; every writer bumps it inside
-- its transaction, which both numbers entries without gaps and orders them by commit.
CREATE TABLE change_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL
);
INSERT INTO change_head (id, seq) VALUES (1, 0);

CREATE TABLE changes (
    seq      INTEGER PRIMARY KEY,
    kind     TEXT NOT NULL,
    subject  TEXT NOT NULL,
    at       INTEGER NOT NULL
);
