-- fundguard store, migration 004: who called from where, and whose regions an audit row is in.
-- `address` is the source address (the client behind a trusted proxy; `cli@host` for the CLI),
-- `token_label` the label of the token used. `caller_regions` are the caller's region grants
-- at the time and `caller_all_regions` marks callers granted every region (admins, auditors
-- without regions, the CLI): a regional auditor reads the rows of callers whose grants lie
-- within theirs. `id` is set on rows written through the CLI spool, so a re-import skips them.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS address String DEFAULT '';
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS user_agent String DEFAULT '';
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS token_label String DEFAULT '';
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS caller_regions Array(String) DEFAULT [];
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS caller_all_regions Bool DEFAULT false;
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS id String DEFAULT '';
