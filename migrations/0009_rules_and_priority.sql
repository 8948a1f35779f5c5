-- `[[rule]]` sections (issue 13): the rule a file was queued under, by its `match`
-- pattern (`status` shows it, and the post-action looks the rule up by it), and its
-- priority: higher is claimed first; within one priority, the oldest first. Files
-- queued before this migration, and files no rule matches, have none and 0.
ALTER TABLE files ADD COLUMN rule TEXT;
ALTER TABLE files ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
