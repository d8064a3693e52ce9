-- Schema version 7 (SQLite): source addresses blocked at ingress (an emergency operation:
-- stopping an attack). Front-ends drop every message from a blocked address or network;
-- they re-read the list when the change feed says `sources.changed`.

CREATE TABLE blocked_sources (
    cidr        TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL
);
