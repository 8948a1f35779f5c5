-- Files given to `dropship push` rather than found by the watcher. Such a file may lie
-- outside the watched folder, so the engine confines it to its own folder instead of
-- the outbox (the file itself must still be a regular file, not a link), and it is
-- never deleted or moved: its post-action is `keep`, whatever `upload.after` says.
-- (Numbered 0007: 0006 is another change's. The loader applies the files in order
-- and counts them, so the number itself is only a name.)
ALTER TABLE files ADD COLUMN pushed INTEGER NOT NULL DEFAULT 0;
