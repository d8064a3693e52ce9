-- Schema version 3 (SQLite): the presence state a front-end writes behind, so that a restart
-- or a failover recovers it: every live publication (RFC 3903) of a local user, and every
-- subscription (RFC 6665) to a local user's presence or watcher information. Hot state like
-- the registrations: the front-end serves from memory, these rows only have to be good
-- enough to start again from. Rows go with their user (ON DELETE CASCADE).

CREATE TABLE presence_publications (
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    etag          TEXT NOT NULL,
    expires_at    INTEGER NOT NULL,
    content_type  TEXT NOT NULL,
    body          BLOB NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (user_id, etag)
);

-- id names the dialog (Call-ID and both tags); dialog is the rest of its state, in the
-- front-end's own line format (the store does not read it).
CREATE TABLE presence_subscriptions (
    id          TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event       TEXT NOT NULL,
    watcher     TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    dialog      TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX presence_subscriptions_by_user ON presence_subscriptions (user_id);
