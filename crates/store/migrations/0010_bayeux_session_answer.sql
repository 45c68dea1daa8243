-- The last answer a Bayeux session was handed and not yet confirmed (OPS-2): when the
-- client's next request lands on another node, that node loads the session from here and
-- must know which entries after the cursor the client was already given, and when, so
-- that a prompt next connect confirms them instead of receiving them twice.
-- `answered_seq` is the highest sequence number of that answer (0: none outstanding);
-- `answered_ms` is when it was handed out (unix milliseconds).
ALTER TABLE bayeux_sessions ADD COLUMN answered_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE bayeux_sessions ADD COLUMN answered_ms BIGINT NOT NULL DEFAULT 0;
