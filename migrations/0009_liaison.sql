-- The liaison statement register (src/liaison/register.rs): every statement received or
-- sent, its destinations, contacts, attachments (stored once by SHA-256) and the events
-- that moved it, plus the numbering counters and the reminder ledger
-- (src/liaison/reminders.rs). Modelled on the IETF Datatracker's LiaisonStatement with
-- its groups, contacts, attachments, RelatedLiaisonStatement and LiaisonStatementEvent.

CREATE TABLE ls_statements (
    id             INTEGER PRIMARY KEY,
    -- our register number, e.g. LS-IN-2012-001 ([liaison] number_format)
    number         TEXT NOT NULL UNIQUE,
    direction      TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    year           INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    -- issuing organization id (registry); 'unknown' until a convener assigns it
    source         TEXT NOT NULL,
    from_subgroup  TEXT,
    title          TEXT,
    -- what the statement asks of us (incoming) or the strongest purpose asked of a
    -- destination (outgoing): action, comment, information; NULL when not addressed to us
    purpose        TEXT,
    -- YYYY-MM-DD, or NULL
    deadline       TEXT,
    org_reference  TEXT,
    -- what the statement says it answers, as extracted
    in_response_to TEXT,
    -- the statement of ours it answers (the reverse link is the rows pointing here)
    answers        INTEGER REFERENCES ls_statements(id),
    -- the archived mail that carried it (messages.id = raw_messages.id), if any
    message        INTEGER REFERENCES raw_messages(id),
    -- that mail's Message-ID, without angle brackets
    message_id     TEXT,
    -- the mail's Date (or the registration time), unix seconds
    date           INTEGER NOT NULL,
    -- incoming: awaiting-reply, noted, replied, closed;
    -- outgoing: sent, awaiting-reply, answered, closed.
    -- 'overdue' is derived (awaiting-reply past its deadline), never stored.
    state          TEXT NOT NULL,
    confidence     REAL NOT NULL DEFAULT 1.0,
    -- JSON array of strings: the classifier's evidence
    signals        TEXT NOT NULL DEFAULT '[]',
    created_at     INTEGER NOT NULL,
    UNIQUE (direction, year, seq)
);
CREATE UNIQUE INDEX ls_statements_message ON ls_statements(direction, message)
    WHERE message IS NOT NULL;
CREATE INDEX ls_statements_message_id ON ls_statements(message_id)
    WHERE message_id IS NOT NULL;
CREATE INDEX ls_statements_answers ON ls_statements(answers) WHERE answers IS NOT NULL;
CREATE INDEX ls_statements_state ON ls_statements(state, deadline);
CREATE INDEX ls_statements_date ON ls_statements(date);

-- Destination organizations, each with its own purpose (ITU-T "For action to: / For
-- information to:", 3GPP per-group actions).
CREATE TABLE ls_destinations (
    statement INTEGER NOT NULL REFERENCES ls_statements(id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    org       TEXT NOT NULL,
    purpose   TEXT NOT NULL,
    PRIMARY KEY (statement, position)
) WITHOUT ROWID;
CREATE INDEX ls_destinations_org ON ls_destinations(org);

CREATE TABLE ls_contacts (
    statement INTEGER NOT NULL REFERENCES ls_statements(id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    name      TEXT NOT NULL,
    email     TEXT,
    PRIMARY KEY (statement, position)
) WITHOUT ROWID;

-- Attachment bytes, stored once whatever the number of statements that carry them.
CREATE TABLE ls_blobs (
    hash BLOB PRIMARY KEY,   -- SHA-256 of data
    data BLOB NOT NULL,
    size INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE ls_attachments (
    statement    INTEGER NOT NULL REFERENCES ls_statements(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    hash         BLOB NOT NULL REFERENCES ls_blobs(hash),
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    PRIMARY KEY (statement, position)
) WITHOUT ROWID;
CREATE INDEX ls_attachments_hash ON ls_attachments(hash);

-- The audit trail: what happened, when, and who or which mail (Message-ID) caused it.
CREATE TABLE ls_events (
    id        INTEGER PRIMARY KEY,
    statement INTEGER NOT NULL REFERENCES ls_statements(id) ON DELETE CASCADE,
    at        INTEGER NOT NULL,        -- unix seconds
    -- received, registered, assigned, noted, awaiting-reply, sent, replied, answered,
    -- closed, reminder-sent, notice-sent
    kind      TEXT NOT NULL,
    actor     TEXT NOT NULL,           -- a Message-ID (<...>) or a user name
    detail    TEXT
);
CREATE INDEX ls_events_statement ON ls_events(statement, at);

-- The last sequence number given per direction and year; numbers are never reused.
CREATE TABLE ls_counters (
    direction TEXT NOT NULL,
    year      INTEGER NOT NULL,
    last      INTEGER NOT NULL,
    PRIMARY KEY (direction, year)
) WITHOUT ROWID;

-- Reminders sent, one row per (statement, reminder point): 'd-14', 'd-7', ..., 'd-0',
-- 'overdue-7', 'overdue-14', ... (days past the deadline).
CREATE TABLE ls_reminders (
    statement INTEGER NOT NULL REFERENCES ls_statements(id) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    sent_at   INTEGER NOT NULL,
    PRIMARY KEY (statement, key)
) WITHOUT ROWID;
