-- `status` on a journal of 100,000 rows: the current attempt's rate, and indexed
-- reads of the few rows it shows (in flight, last errors, the most recent done),
-- never a scan of every row. Housekeeping prunes old `done` rows by age.

-- Unix milliseconds when the engine last claimed the row, and the bytes of its parts
-- the service had acknowledged then: the current attempt's rate is what it got
-- acknowledged since, over the time since. (`bytes_sent` counts a part when it
-- starts, so it cannot give a rate.)
ALTER TABLE files ADD COLUMN claimed_at INTEGER;
ALTER TABLE files ADD COLUMN acked_at_claim INTEGER;

-- The most recent rows of a state (`status`'s recent done and last errors) and the
-- oldest finished ones (pruning).
CREATE INDEX files_by_state_updated ON files(state, updated_at);
