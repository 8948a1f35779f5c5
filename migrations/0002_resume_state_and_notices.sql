-- Where an upload's whole-file hash stands, sessions begun but not yet recorded, and
-- conditions of the daemon that `dropship status` reports.

-- JSON of the HashCheckpoint the read pass reached (src/digest.rs): a later attempt
-- continues the whole-file hash from there instead of reading the file from byte 0.
-- Valid while the file's identity is unchanged; cleared with the session.
ALTER TABLE files ADD COLUMN hash_state TEXT;

-- Unix milliseconds at which `begin` was called for a row that has no session yet.
-- Set before the request goes out, cleared when the session is recorded: a row that
-- still has it after a crash may own a session nobody recorded, which the next start
-- asks the backend to find and discard.
ALTER TABLE files ADD COLUMN begin_intent INTEGER;

-- One row per condition worth showing in `status`: the backend waiting for
-- credentials ('backend'), a folder of the outbox that cannot be read ('watch:<path>').
-- A row exists only while its condition lasts.
CREATE TABLE notices (
    topic   TEXT    PRIMARY KEY,
    state   TEXT    NOT NULL,
    -- Unix milliseconds when the condition began.
    since   INTEGER NOT NULL,
    reason  TEXT
) WITHOUT ROWID;
