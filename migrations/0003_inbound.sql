-- The daemon's inbound side: one row per (message, recipient) accepted from a source,
-- the state of each source for `concord status`, and IMAP cursors.

CREATE TABLE deliveries (
    id            INTEGER PRIMARY KEY,
    message       INTEGER NOT NULL REFERENCES raw_messages(id),
    source        TEXT NOT NULL,
    recipient     TEXT NOT NULL,
    -- route kind (post, request, owner, bounces, confirm, join, leave, liaison_intake,
    -- submit, alias); NULL when the recipient has no route
    route         TEXT,
    list          TEXT,
    token         TEXT,
    envelope_from TEXT,
    received_at   INTEGER NOT NULL,
    -- 'new' until the list or liaison stage has handled it
    state         TEXT NOT NULL DEFAULT 'new',
    UNIQUE (message, recipient)
);
CREATE INDEX deliveries_state ON deliveries(state, route);

CREATE TABLE sources (
    name            TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL,
    detail          TEXT,
    messages        INTEGER NOT NULL DEFAULT 0,
    last_message_at INTEGER,
    last_error      TEXT,
    last_error_at   INTEGER,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE imap_state (
    source      TEXT PRIMARY KEY,
    uidvalidity INTEGER NOT NULL,
    last_uid    INTEGER NOT NULL
);

-- The running daemon (one row): `concord status` tells whether it is alive.
CREATE TABLE daemon (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    pid          INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    stopped_at   INTEGER
);
