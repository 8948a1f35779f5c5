-- Local retention (issue 13): a delivered file left in the outbox by
-- `after = "keep"` is `kept` until retention removes it (`keep_for`, `outbox_max`)
-- or finds it gone. The outbox's size is then what active, failed and kept rows
-- add up to, read from one index instead of a walk of the outbox.
ALTER TABLE files ADD COLUMN kept INTEGER NOT NULL DEFAULT 0;
CREATE INDEX files_kept ON files (updated_at) WHERE kept = 1;
