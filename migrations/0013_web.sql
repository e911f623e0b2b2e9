-- The web interface (src/web/): the key that signs session cookies, one-time sign-in
-- links, API tokens and the per-member tokens of RFC 8058 one-click unsubscription.
-- Tokens are stored as the SHA-256 of what was mailed or printed, never in the clear.

-- Secret keys made on first use (when [web] session_key_file is not set); `name` says
-- what each signs ('session').
CREATE TABLE web_keys (
    name       TEXT PRIMARY KEY,
    key        BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

-- Sign-in links mailed to members: single use, expiring.
CREATE TABLE web_login_tokens (
    hash       BLOB PRIMARY KEY,        -- SHA-256 of the token
    address    TEXT NOT NULL,           -- lower-cased
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX web_login_tokens_address ON web_login_tokens(address, created_at);

-- API tokens (`concord web token create ADDRESS`), sent as `Authorization: Bearer`.
CREATE TABLE web_api_tokens (
    id           INTEGER PRIMARY KEY,
    hash         BLOB NOT NULL UNIQUE,  -- SHA-256 of the token
    address      TEXT NOT NULL,         -- lower-cased; the member it acts for
    note         TEXT,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

-- One token per (list, member) for the RFC 8058 one-click unsubscribe URL in that
-- member's copies; it stays valid until used or the member leaves.
CREATE TABLE web_unsubscribe_tokens (
    token      TEXT PRIMARY KEY,
    list       TEXT NOT NULL,
    address    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (list, address)
);
