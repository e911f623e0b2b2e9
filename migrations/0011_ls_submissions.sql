-- Outgoing liaison statements submitted by mail (src/liaison/submit.rs) or from the
-- command line (`concord ls send`): every attempt, whoever sent it and whatever became of
-- it, as `concord ls submissions` shows it; and the Message-ID of every message an issued
-- statement was mailed in (src/liaison/issue.rs), so that replies to any of them link.

CREATE TABLE ls_submissions (
    id          INTEGER PRIMARY KEY,
    -- the archived submission mail (raw_messages.id); NULL for `concord ls send`
    message     INTEGER REFERENCES raw_messages(id),
    -- 'mail' or 'cli'
    via         TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    -- the From address (lower-cased), or the user who ran `concord ls send`
    sender      TEXT,
    message_id  TEXT,
    title       TEXT,
    -- JSON: the parsed submission (title, destinations, deadline, contacts, what it
    -- answers, body text, attachment names/types/sizes/hashes)
    fields      TEXT,
    -- DKIM (RFC 6376) aligned with the From domain (RFC 7489 section 3.1): 'pass'; a valid
    -- signature of another domain only: 'unaligned'; signatures that do not verify:
    -- 'fail'; no signature: 'none'; 'n/a' for the command line
    dkim        TEXT NOT NULL,
    -- the signing domains seen (comma-separated)
    dkim_domain TEXT,
    -- who the sender is to concord: convener, secretariat, member, unknown, cli
    role        TEXT NOT NULL,
    list        TEXT,
    -- pending (awaiting confirmation), issued, refused (not a convener), rejected (no valid
    -- aligned DKIM signature where one is required), invalid (fields in error), expired,
    -- ignored (automatic message, no From)
    state       TEXT NOT NULL,
    reason      TEXT,
    -- the confirmation token and the registered address it was mailed to
    token       TEXT,
    confirm_to  TEXT,
    expires_at  INTEGER,
    -- the register entry it became
    statement   INTEGER REFERENCES ls_statements(id),
    number      TEXT,
    decided_at  INTEGER,
    -- the Message-ID of the confirming mail, or the user
    decided_by  TEXT
);
CREATE UNIQUE INDEX ls_submissions_message ON ls_submissions(message) WHERE message IS NOT NULL;
CREATE INDEX ls_submissions_pending ON ls_submissions(state, expires_at);
CREATE INDEX ls_submissions_token ON ls_submissions(token) WHERE token IS NOT NULL;

-- One row per message an outgoing statement was mailed in (one per destination
-- organization); ls_statements.message_id holds the first.
CREATE TABLE ls_out_messages (
    message_id TEXT PRIMARY KEY,        -- without angle brackets
    statement  INTEGER NOT NULL REFERENCES ls_statements(id) ON DELETE CASCADE,
    org        TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX ls_out_messages_statement ON ls_out_messages(statement);
