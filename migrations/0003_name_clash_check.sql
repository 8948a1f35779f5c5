-- Whether the name clash check of `upload.on_exists = "skip" | "fail"` was done for a
-- row: it must run once, before the first request that could create the object. A
-- later attempt (after a crash, a lost answer) sees the object this daemon wrote
-- and must not take it for somebody else's.
ALTER TABLE files ADD COLUMN clash_checked INTEGER NOT NULL DEFAULT 0;
