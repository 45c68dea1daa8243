-- The role of a Bayeux session's user (DC-2): a device's own user may subscribe only to the
-- managed objects it owns, also on a session restored after a restart. Sessions saved
-- before this column existed have '' and are treated as a device's (the narrower rights).
ALTER TABLE bayeux_sessions ADD COLUMN role TEXT NOT NULL DEFAULT '';
