-- Bounce scores per member (GNU Mailman 3's rule: at most one point per day a member's
-- mail bounces; at the threshold delivery is disabled, warnings follow, then removal).
ALTER TABLE members ADD COLUMN bounce_score INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN last_bounce_at INTEGER;
ALTER TABLE members ADD COLUMN disabled_at INTEGER;
ALTER TABLE members ADD COLUMN warnings_sent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN last_warning_at INTEGER;

-- Every bounce seen, for owners puzzling over a member's score.
CREATE TABLE bounce_events (
    id         INTEGER PRIMARY KEY,
    list       TEXT NOT NULL,
    address    TEXT NOT NULL,
    message    INTEGER,
    source     TEXT NOT NULL,          -- 'dsn' (a bounce message) or 'smtp' (a 5xx at delivery)
    status     TEXT,
    at         INTEGER NOT NULL,
    counted    INTEGER NOT NULL        -- 1 when it raised the score
);
CREATE INDEX bounce_events_member ON bounce_events(list, address, at);
