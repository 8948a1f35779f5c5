-- While the service cannot be reached, the daemon tries it with one file at a time,
-- backing off up to `retry_max`. The plan of the next try is kept with the backend's
-- notice, so that a restarted daemon resumes the backoff instead of trying every file
-- at once (and `status` can say when the next try is).

-- Unix milliseconds of the next try; NULL where the condition has no such plan.
ALTER TABLE notices ADD COLUMN retry_at INTEGER;

-- Tries since the condition began (drives the backoff).
ALTER TABLE notices ADD COLUMN tries INTEGER;

-- Since this migration, `files.join_started` is also set just before a completion
-- request goes out to a service that joins on its own (Edgio): a daemon that dies
-- before the answer is recorded still knows a join may be running.
