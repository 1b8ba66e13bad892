-- Files uploaded with OpenAI's `expires_after` (issue 14): the Unix second after which the file is
-- deleted (once no unfinished job needs it). NULL: the file is kept until deleted.
ALTER TABLE files ADD COLUMN expires_at BIGINT;
