-- Extra names for the organizations of config/organizations.toml, added at run time
-- (`concord orgs alias add`) and merged into the registry when it is loaded.
CREATE TABLE org_aliases (
    org      TEXT NOT NULL,            -- an id from config/organizations.toml
    alias    TEXT NOT NULL,            -- as typed; matched after normalisation
    added_at INTEGER NOT NULL,         -- unix seconds
    PRIMARY KEY (org, alias)
);
