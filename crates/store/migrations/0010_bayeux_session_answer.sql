-- Bayeux sessions served by several nodes on one database (OPS-2).
--
-- The last answer a session was handed and not yet confirmed: when the
-- client's next request lands on another node, that node loads the session from here and
-- must know which entries after the cursor the client was already given, and when, so
-- that a prompt next connect confirms them instead of receiving them twice.
-- `answered_seq` is the highest sequence number of that answer (0: none outstanding);
-- `answered_ms` is when it was handed out (unix milliseconds).
ALTER TABLE bayeux_sessions ADD COLUMN answered_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE bayeux_sessions ADD COLUMN answered_ms BIGINT NOT NULL DEFAULT 0;

-- The node serving the session ('' for a node alone): positions are saved only by it, so
-- a node that missed the notice of a takeover cannot move back the cursor of a session
-- another node now serves, and finds out at its next resync that it lost the session.
ALTER TABLE bayeux_sessions ADD COLUMN node TEXT NOT NULL DEFAULT '';
