-- Remote Services (SPEC section 7, RS-3 RS-6 RS-8 RS-9): sites in a tree, devices in sites,
-- endpoints, Protocol Applications, their assignments to devices, site members, connection
-- sessions and the audit trail. Portable SQL as in 0001; times are BIGINT unix milliseconds;
-- lists are JSON text. Every table is keyed by tenant and every query names it. Objects are
-- named per tenant (`portico connect --device NAME --app NAME`). As for identity, there is
-- no foreign key to `tenants`.

CREATE TABLE rs_sites (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    parent TEXT,                      -- NULL: a root site of the tenant
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, name),
    FOREIGN KEY (tenant, parent) REFERENCES rs_sites (tenant, name)
);

CREATE TABLE rs_devices (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    site TEXT NOT NULL,
    description TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, name),
    FOREIGN KEY (tenant, site) REFERENCES rs_sites (tenant, name)
);
CREATE INDEX rs_devices_site ON rs_devices (tenant, site);

CREATE TABLE rs_endpoints (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,               -- device | service
    device TEXT,                      -- a device endpoint's device
    site TEXT,                        -- a service endpoint of a site
    user_name TEXT,                   -- a service endpoint of a user
    state TEXT NOT NULL,              -- pending | registered | revoked
    code_hash TEXT,                   -- hex SHA-256 of the one-time registration code; NULL once used
    code_expires_ms BIGINT,
    client_id TEXT,                   -- the OAuth client it got at registration
    created_ms BIGINT NOT NULL,
    registered_ms BIGINT,
    revoked_ms BIGINT,
    PRIMARY KEY (tenant, name)
);
CREATE UNIQUE INDEX rs_endpoints_code ON rs_endpoints (code_hash);
CREATE INDEX rs_endpoints_device ON rs_endpoints (tenant, device);

CREATE TABLE rs_applications (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    template TEXT NOT NULL,           -- a template id of the built-in catalogue
    mappings TEXT NOT NULL,           -- JSON: [{local_port, target_host, target_port}]
    target_endpoint TEXT,             -- DTT Reverse: the service endpoint that dials
    session_timeout_s BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE rs_assignments (
    tenant TEXT NOT NULL,
    application TEXT NOT NULL,
    device TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, application, device),
    FOREIGN KEY (tenant, application) REFERENCES rs_applications (tenant, name),
    FOREIGN KEY (tenant, device) REFERENCES rs_devices (tenant, name)
);
CREATE INDEX rs_assignments_device ON rs_assignments (tenant, device);

CREATE TABLE rs_site_members (
    tenant TEXT NOT NULL,
    site TEXT NOT NULL,
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,               -- site-owner | user
    PRIMARY KEY (tenant, site, user_name),
    FOREIGN KEY (tenant, site) REFERENCES rs_sites (tenant, name)
);
CREATE INDEX rs_site_members_user ON rs_site_members (tenant, user_name);

CREATE TABLE rs_connection_sessions (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    device TEXT NOT NULL,
    application TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    ends_ms BIGINT NOT NULL,          -- started + the application's session timeout
    ended_ms BIGINT,                  -- NULL while open
    end_reason TEXT,                  -- ended | timeout | revoked | unassigned
    bytes_up BIGINT NOT NULL,         -- service side to device side
    bytes_down BIGINT NOT NULL,       -- device side to service side
    PRIMARY KEY (tenant, id)
);
CREATE INDEX rs_connection_sessions_open ON rs_connection_sessions (tenant, ended_ms);

CREATE TABLE rs_audit (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX rs_audit_time ON rs_audit (tenant, at_ms);
