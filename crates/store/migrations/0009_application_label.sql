-- What people call a Protocol Application ("Ticketing Server Access"), beside its name,
-- which is a key made for command lines. Applications made before have '' (shown as their
-- name).
ALTER TABLE rs_applications ADD COLUMN label TEXT NOT NULL DEFAULT '';
