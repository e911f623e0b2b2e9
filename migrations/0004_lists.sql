-- List membership and moderation.

CREATE TABLE members (
    list         TEXT NOT NULL,
    address      TEXT NOT NULL,          -- lower-cased
    display_name TEXT,
    -- owner, moderator, convener, member
    role         TEXT NOT NULL DEFAULT 'member',
    -- regular, nomail
    delivery     TEXT NOT NULL DEFAULT 'regular',
    -- posts from this member are held for a moderator
    moderated    INTEGER NOT NULL DEFAULT 0,
    -- the member receives a copy of their own posts
    receive_own  INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (list, address)
) WITHOUT ROWID;
CREATE INDEX members_address ON members(address);

-- Posts held for moderation, and how each was decided.
CREATE TABLE holds (
    id          INTEGER PRIMARY KEY,
    list        TEXT NOT NULL,
    message     INTEGER NOT NULL REFERENCES raw_messages(id),
    delivery    INTEGER REFERENCES deliveries(id),
    sender      TEXT,
    reasons     TEXT NOT NULL,            -- JSON array of strings
    created_at  INTEGER NOT NULL,
    -- held, approved, rejected, discarded, expired
    state       TEXT NOT NULL DEFAULT 'held',
    decided_at  INTEGER,
    decided_by  TEXT,
    note        TEXT,
    UNIQUE (list, message)
);
CREATE INDEX holds_state ON holds(state, list);
