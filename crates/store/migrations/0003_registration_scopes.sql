-- Scopes a registration requires of its callers (identity: `scopes = [...]` next to
-- `auth = "session"` / `"bearer"`). A JSON array of strings, as the other lists; existing
-- registrations require none.
ALTER TABLE webapps ADD COLUMN scopes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE apis ADD COLUMN scopes TEXT NOT NULL DEFAULT '[]';
