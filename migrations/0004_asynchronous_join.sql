-- Services that assemble the object after accepting the completion (Edgio's
-- multipart join): the file rests in state 'joining' between polls, holding no
-- worker. These say where the join stands, so that a restarted daemon polls it and
-- never asks for the completion again.

-- Unix milliseconds when the service accepted the completion (or restarted the
-- join); NULL while it has not. Cleared with the session.
ALTER TABLE files ADD COLUMN join_started INTEGER;

-- Restarts of a failed join asked for this session (Edgio: `restartMultipart`,
-- once; a join that fails again begins a new upload).
ALTER TABLE files ADD COLUMN join_restarts INTEGER NOT NULL DEFAULT 0;

-- Polls are claimed by due time, like retries.
CREATE INDEX files_joining ON files(next_attempt_at) WHERE state = 'joining';
