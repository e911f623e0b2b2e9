-- The archive: raw mail is the source of truth; everything else here is derived
-- from it and can be recomputed by `concord archive rebuild`.

-- Exact bytes of every message, stored once, keyed by the SHA-256 of those bytes.
CREATE TABLE raw_messages (
    id    INTEGER PRIMARY KEY,
    hash  BLOB NOT NULL UNIQUE,
    raw   BLOB NOT NULL
);

-- One row per raw message: fields parsed from it, its place in a thread, or the
-- reason it was quarantined. `id` equals raw_messages.id.
CREATE TABLE messages (
    id               INTEGER PRIMARY KEY REFERENCES raw_messages(id),
    message_id       TEXT NOT NULL,
    synthetic_id     INTEGER NOT NULL DEFAULT 0,
    list             TEXT,
    date             INTEGER,
    subject          TEXT,
    base_subject     TEXT NOT NULL DEFAULT '',
    reply_subject    INTEGER NOT NULL DEFAULT 0,
    from_name        TEXT,
    from_addr        TEXT,
    to_addrs         TEXT NOT NULL DEFAULT '',
    cc_addrs         TEXT NOT NULL DEFAULT '',
    in_reply_to      TEXT NOT NULL DEFAULT '',
    refs             TEXT NOT NULL DEFAULT '',
    attachment_count INTEGER NOT NULL DEFAULT 0,
    size             INTEGER NOT NULL,
    thread_id        INTEGER,
    parent_mid       TEXT,
    quarantine       TEXT,
    origin           TEXT NOT NULL DEFAULT '',
    imported_at      INTEGER NOT NULL
);
CREATE INDEX messages_message_id ON messages(message_id);
CREATE INDEX messages_thread ON messages(thread_id, date);
CREATE INDEX messages_date ON messages(date);
CREATE INDEX messages_quarantine ON messages(quarantine) WHERE quarantine IS NOT NULL;
CREATE INDEX messages_subject ON messages(base_subject, list);

-- Every Message-ID a message references (References and In-Reply-To), so threading can
-- find a new message's children and siblings without scanning the archive.
CREATE TABLE message_refs (
    message INTEGER NOT NULL REFERENCES messages(id),
    ref     TEXT NOT NULL,
    PRIMARY KEY (message, ref)
) WITHOUT ROWID;
CREATE INDEX message_refs_ref ON message_refs(ref);

-- Which lists a message was archived under (the same bytes may reach two lists).
CREATE TABLE message_lists (
    list    TEXT NOT NULL,
    message INTEGER NOT NULL REFERENCES messages(id),
    PRIMARY KEY (list, message)
) WITHOUT ROWID;
CREATE INDEX message_lists_message ON message_lists(message);

-- Threads as computed by archive::thread (JWZ); `id` is the smallest message id in it.
CREATE TABLE threads (
    id            INTEGER PRIMARY KEY,
    root_mid      TEXT NOT NULL,
    subject       TEXT,
    message_count INTEGER NOT NULL,
    first_date    INTEGER,
    last_date     INTEGER
);
CREATE INDEX threads_last_date ON threads(last_date);

-- Containers for messages that are referenced but not archived, kept where they hold a
-- thread's branches together (JWZ step 4).
CREATE TABLE ghosts (
    thread_id  INTEGER NOT NULL,
    mid        TEXT NOT NULL,
    parent_mid TEXT,
    PRIMARY KEY (thread_id, mid)
) WITHOUT ROWID;

-- Full-text index; rowid = messages.id. Porter stemming over unicode61 with diacritics
-- folded, so "meetings" finds "meeting" and "reunion" finds "réunion".
CREATE VIRTUAL TABLE message_fts USING fts5(
    subject, sender, recipients, body, attachments,
    tokenize = 'porter unicode61 remove_diacritics 2'
);
