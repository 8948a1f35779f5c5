-- Whether the name clash check of `upload.on_exists = "skip" | "fail"` was done for a
-- row: it must run once, before the first request that could create the object. A
-- later attempt (after a crash, a lost answer) sees the object this daemon wrote
-- and must not take it for somebody else's.
ALTER TABLE files ADD COLUMN clash_checked INTEGER NOT NULL DEFAULT 0;

-- Rows an earlier version began may hold an object at their key already (a request
-- whose answer was lost); that version overwrote names, so their check counts as done.
UPDATE files SET clash_checked = 1 WHERE attempts > 0;
