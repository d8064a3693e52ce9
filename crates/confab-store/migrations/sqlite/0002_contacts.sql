-- Schema version 2 (SQLite): server-side contact lists and presence rules, per user.
--
-- A contact is any SIP address `user@domain`, possibly a user of another deployment, so it is
-- kept as text (user part as given, domain in lower case) and references no user row. Every
-- row belongs to one user and goes with it (ON DELETE CASCADE). A contact's group must be a
-- group of the same user: the composite key (user_id, group_id) says so, and a group that
-- still holds contacts cannot be deleted (the store moves them to no group first, when asked).

CREATE TABLE contact_groups (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    position    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (user_id, name),
    UNIQUE (user_id, id)
);

CREATE TABLE contacts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    contact_user    TEXT NOT NULL,
    contact_domain  TEXT NOT NULL,
    display_name    TEXT,
    group_id        INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (user_id, contact_user, contact_domain),
    FOREIGN KEY (user_id, group_id) REFERENCES contact_groups (user_id, id)
);
CREATE INDEX contacts_by_group ON contacts (group_id);
-- Whose lists hold an address: what presence asks when that address changes state.
CREATE INDEX contacts_by_address ON contacts (contact_domain, contact_user);

-- A watcher is a user address, or a whole domain with watcher_user = '' (a user part is never
-- empty), so that one uniqueness rule covers both.
CREATE TABLE presence_rules (
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    watcher_user    TEXT NOT NULL,
    watcher_domain  TEXT NOT NULL,
    level           TEXT NOT NULL
        CHECK (level IN ('blocked', 'colleagues', 'workgroup', 'friends-and-family')),
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (user_id, watcher_user, watcher_domain)
);
