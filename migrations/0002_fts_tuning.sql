-- Full-text index tuning for bulk writes (persistent FTS5 settings, see
-- https://sqlite.org/fts5.html#fts5_configuration_options):
-- a 16 MiB pending-terms buffer flushes fewer, larger segments than the 1 MiB default,
-- and merging at 8 segments per level instead of 4 halves merge work during imports.
-- A large import ends with an 'optimize' merge (archive::import) so searches read one
-- segment.
INSERT INTO message_fts(message_fts, rank) VALUES ('hashsize', 16777216);
INSERT INTO message_fts(message_fts, rank) VALUES ('automerge', 8);
