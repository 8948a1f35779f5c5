-- The journal: one row per (path, content) seen finished in the watched folder, and
-- one row per part of its upload. State names are part of the format (src/journal/states.rs).

CREATE TABLE files (
    id               INTEGER PRIMARY KEY,
    -- Local path, as the bytes the OS uses (not every name is UTF-8).
    path             BLOB    NOT NULL,
    -- Remote key: path relative to the watched folder, '/'-separated; NULL if the
    -- name cannot be sent (not UTF-8), in which case the row is 'failed'.
    key              TEXT,
    size             INTEGER NOT NULL,
    mtime_ns         INTEGER NOT NULL,
    inode            INTEGER NOT NULL,
    state            TEXT    NOT NULL,
    -- JSON of the backend's Session; committed before the first part is sent.
    session          TEXT,
    part_size        INTEGER,
    -- Claims of this row by the engine (status shows it).
    attempts         INTEGER NOT NULL DEFAULT 0,
    -- Failures in a row without progress: drives the backoff; reset by progress.
    failures         INTEGER NOT NULL DEFAULT 0,
    -- Remote digest mismatches: bounded by upload.verify_attempts.
    verify_failures  INTEGER NOT NULL DEFAULT 0,
    -- Unix milliseconds before which a 'retrying' row is not claimed.
    next_attempt_at  INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    -- Every byte put on the wire for this row, retries included.
    bytes_sent       INTEGER NOT NULL DEFAULT 0,
    -- JSON of the whole-file digests from the read pass (set entering 'completing').
    digests          TEXT,
    -- JSON of the RemoteObject the backend returned on completion.
    remote           TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

-- At most one row per path is still in progress: enqueue supersedes the older one.
CREATE UNIQUE INDEX files_one_active_per_path ON files(path)
    WHERE state NOT IN ('done', 'failed', 'superseded');
CREATE INDEX files_by_path ON files(path, id);
CREATE INDEX files_by_state ON files(state, next_attempt_at);

CREATE TABLE parts (
    file_id  INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    idx      INTEGER NOT NULL,
    offset   INTEGER NOT NULL,
    length   INTEGER NOT NULL,
    state    TEXT    NOT NULL,
    -- JSON of the backend's Receipt; never NULL in state 'uploaded'.
    receipt  TEXT,
    PRIMARY KEY (file_id, idx),
    CHECK (state <> 'uploaded' OR receipt IS NOT NULL)
) WITHOUT ROWID;
