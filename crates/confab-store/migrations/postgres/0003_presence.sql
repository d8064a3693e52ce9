-- Schema version 3 (PostgreSQL): the presence write-behind; the same tables as
-- migrations/sqlite/0003_presence.sql, in PostgreSQL's types.

CREATE TABLE presence_publications (
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    etag          TEXT NOT NULL,
    expires_at    BIGINT NOT NULL,
    content_type  TEXT NOT NULL,
    body          BYTEA NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (user_id, etag)
);

CREATE TABLE presence_subscriptions (
    id          TEXT PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event       TEXT NOT NULL,
    watcher     TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    dialog      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX presence_subscriptions_by_user ON presence_subscriptions (user_id);
