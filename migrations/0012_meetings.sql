-- Meetings of the group (src/meeting/): each announced to a list with an iCalendar
-- object (RFC 5545, RFC 5546 iTIP), its attendance, the decisions and actions taken, the
-- mails sent about it and the reminder ledger.

CREATE TABLE meetings (
    id                 INTEGER PRIMARY KEY,
    -- iCalendar UID (RFC 5545 section 3.8.4.7): the same in every mail about the meeting
    uid                TEXT NOT NULL UNIQUE,
    -- iCalendar SEQUENCE (RFC 5545 section 3.8.7.4): raised by each change made after the
    -- meeting was announced
    sequence           INTEGER NOT NULL DEFAULT 0,
    -- the list the meeting is announced to
    list               TEXT NOT NULL,
    title              TEXT NOT NULL,
    -- wall-clock times in the meeting's zone, 'YYYY-MM-DDTHH:MM:SS'
    start_local        TEXT NOT NULL,
    end_local          TEXT NOT NULL,
    -- IANA time zone name, e.g. 'Europe/Zurich'
    tz                 TEXT NOT NULL,
    -- the same instants, unix seconds (for ordering, periods and reminders)
    start_utc          INTEGER NOT NULL,
    end_utc            INTEGER NOT NULL,
    place              TEXT,
    remote_url         TEXT,
    dial_in            TEXT,
    -- for members only: never written into list mail, iCalendar objects or reports
    access_code        TEXT,
    notes              TEXT,
    status             TEXT NOT NULL DEFAULT 'planned'
                       CHECK (status IN ('planned', 'held', 'cancelled')),
    -- free text on the next meeting, when it is not (yet) in this table
    next_meeting       TEXT,
    -- when the first announcement was queued, and the SEQUENCE of the last mail sent
    announced_at       INTEGER,
    announced_sequence INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    CHECK (end_utc > start_utc)
);
CREATE INDEX meetings_start ON meetings(start_utc);

-- Who attended: entered by the secretariat from a CSV file or one by one.
CREATE TABLE meeting_attendees (
    id           INTEGER PRIMARY KEY,
    meeting      INTEGER NOT NULL REFERENCES meetings(id) ON DELETE CASCADE,
    -- lower-cased address, or lower-cased name when there is no address: one row each
    key          TEXT NOT NULL,
    name         TEXT NOT NULL,
    address      TEXT,
    organization TEXT,
    UNIQUE (meeting, key)
);

-- Decisions and actions recorded at the meeting, in the order entered.
CREATE TABLE meeting_actions (
    id         INTEGER PRIMARY KEY,
    meeting    INTEGER NOT NULL REFERENCES meetings(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('decision', 'action')),
    text       TEXT NOT NULL,
    owner      TEXT,
    -- YYYY-MM-DD
    due        TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX meeting_actions_meeting ON meeting_actions(meeting, id);

-- Every mail queued about a meeting: announcement, update, cancellation, reminder.
CREATE TABLE meeting_mails (
    id         INTEGER PRIMARY KEY,
    meeting    INTEGER NOT NULL REFERENCES meetings(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    sequence   INTEGER NOT NULL,
    -- the outbox row (outbound queue) that carries it
    outbox     INTEGER,
    message_id TEXT NOT NULL,
    at         INTEGER NOT NULL
);
CREATE INDEX meeting_mails_meeting ON meeting_mails(meeting, id);

-- Reminders sent, one row per (meeting, point): 'd-7@START' is the reminder seven days
-- before the meeting starting at START (unix seconds), so a meeting moved to another
-- time gets its reminders again.
CREATE TABLE meeting_reminders (
    meeting INTEGER NOT NULL REFERENCES meetings(id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    PRIMARY KEY (meeting, key)
) WITHOUT ROWID;
