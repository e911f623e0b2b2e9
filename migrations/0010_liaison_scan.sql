-- Which stored messages the liaison stage has classified, and what it decided: a message
-- is classified once, whichever route (liaison intake, list post) brought it.
CREATE TABLE ls_scanned (
    message    INTEGER PRIMARY KEY REFERENCES raw_messages(id),
    is_liaison INTEGER NOT NULL,
    -- the register entry made from it
    statement  INTEGER REFERENCES ls_statements(id),
    -- 1 when it came to a liaison intake address
    intake     INTEGER NOT NULL DEFAULT 0,
    confidence REAL NOT NULL,
    signals    TEXT NOT NULL,
    scanned_at INTEGER NOT NULL
);
CREATE INDEX ls_scanned_intake ON ls_scanned(intake, is_liaison);
