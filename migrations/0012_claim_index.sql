-- The claim (issue 14): the next file to work on is the first claimable row in
-- `priority DESC, next_attempt_at, id` order. Without an index in that order SQLite
-- sorted every claimable row in a temporary B-tree on each claim, about 60 ms at
-- 100,000 rows, with the journal's lock held. Walked in this partial index, a
-- claim reads rows in order and stops at the first it may take.
CREATE INDEX files_claim ON files (priority DESC, next_attempt_at, id)
    WHERE state IN ('queued', 'retrying', 'joining');
