-- The outbound queue: each message to send stored once (outbox), and one row per
-- recipient with its delivery state (outbox_recipients). All times are milliseconds since
-- the Unix epoch.
--
-- A recipient row moves queued -> sending (claimed by the worker, leased_until set) ->
-- sent | failed (permanent, 5yz) | expired (temporary failures past [outbound]
-- retry_days) | queued again (temporary failure, next_attempt_at pushed back).

CREATE TABLE outbox (
    id             INTEGER PRIMARY KEY,
    raw            BLOB NOT NULL,
    -- RFC 5321 reverse-path; '' is the null reverse-path <>
    envelope_from  TEXT NOT NULL,
    list           TEXT,
    origin_message INTEGER REFERENCES raw_messages(id),
    created_at     INTEGER NOT NULL
);

CREATE TABLE outbox_recipients (
    id              INTEGER PRIMARY KEY,
    message         INTEGER NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
    -- local part as given, domain lower-cased
    recipient       TEXT NOT NULL,
    domain          TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'expired')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    -- the last reply: SMTP code (NULL when no server answered) and text
    last_code       INTEGER,
    last_reply      TEXT,
    -- while 'sending': the claim is void after this time (a crashed worker)
    leased_until    INTEGER,
    sent_at         INTEGER,
    -- when the row became 'failed' or 'expired'
    failed_at       INTEGER,
    -- when bounce processing took the failure (NULL: not yet)
    handled_at      INTEGER,
    UNIQUE (message, recipient)
);

-- What the worker claims next, and the rest of a message's recipients on one domain.
CREATE INDEX outbox_recipients_due ON outbox_recipients(next_attempt_at)
    WHERE state = 'queued';
CREATE INDEX outbox_recipients_group ON outbox_recipients(message, domain)
    WHERE state = 'queued';
-- Claims to reclaim after a crash.
CREATE INDEX outbox_recipients_leased ON outbox_recipients(leased_until)
    WHERE state = 'sending';
-- Failures bounce processing has not taken yet.
CREATE INDEX outbox_recipients_unhandled ON outbox_recipients(failed_at)
    WHERE state IN ('failed', 'expired') AND handled_at IS NULL;
