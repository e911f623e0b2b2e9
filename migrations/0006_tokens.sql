-- Confirmation tokens: subscription and unsubscription requests (double opt-in), owner
-- approval of a subscription, and moderation of a held post by reply. Single use; they
-- expire.
CREATE TABLE tokens (
    token      TEXT PRIMARY KEY,
    list       TEXT NOT NULL,
    -- subscribe, unsubscribe, approve-subscription, moderate
    kind       TEXT NOT NULL,
    address    TEXT,
    name       TEXT,
    hold       INTEGER REFERENCES holds(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX tokens_pending ON tokens(list, kind) WHERE used_at IS NULL;
