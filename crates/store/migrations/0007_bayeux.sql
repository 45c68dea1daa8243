-- Bayeux notifications (DC-2, "operations are never lost"): a log of the notifications
-- each endpoint published, and the client sessions that survive a restart. Portable SQL as
-- in 0001; times are BIGINT unix milliseconds; lists are JSON text. `endpoint` is
-- `operations` or `realtime`; every row names its tenant.
--
-- Sequence numbers come from `bayeux_sequences` (one row per endpoint, bumped inside the
-- appending transaction) rather than an auto-increment column, whose syntax differs
-- between SQLite and PostgreSQL, and so that pruning the log never lets a number be reused.

CREATE TABLE bayeux_sequences (
    endpoint TEXT NOT NULL PRIMARY KEY,
    last_seq BIGINT NOT NULL
);
INSERT INTO bayeux_sequences (endpoint, last_seq) VALUES ('operations', 0);
INSERT INTO bayeux_sequences (endpoint, last_seq) VALUES ('realtime', 0);

CREATE TABLE bayeux_log (
    endpoint TEXT NOT NULL,
    seq BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    channel TEXT NOT NULL,
    data TEXT NOT NULL,               -- JSON
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (endpoint, seq)
);
CREATE INDEX bayeux_log_tenant ON bayeux_log (endpoint, tenant, seq);

CREATE TABLE bayeux_sessions (
    endpoint TEXT NOT NULL,
    client_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    user_name TEXT NOT NULL,
    subscriptions TEXT NOT NULL,      -- JSON: ["/123", "/*"]
    connect_timeout_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    cursor_seq BIGINT NOT NULL,       -- every matching log entry up to here was handed out
    PRIMARY KEY (endpoint, client_id)
);
CREATE INDEX bayeux_sessions_tenant ON bayeux_sessions (tenant, endpoint);
