-- Compression before upload (issue 13): how the file is compressed (`gzip:6`,
-- `zstd:3`; NULL: sent as it is), decided when it is queued, and its compressed
-- copy in the spool once written (JSON: path, size, mtime_ns, inode). The copy is
-- what is uploaded and verified; the file itself gets the post-action.
ALTER TABLE files ADD COLUMN compress TEXT;
ALTER TABLE files ADD COLUMN spool TEXT;
