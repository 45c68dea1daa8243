-- Portico's registry (SPEC GW-8) and its bootstrap settings.
-- Portable SQL: the same file runs on SQLite and PostgreSQL (sqlx `Any` driver).
-- No autoincrement: every table has a natural key. Lists keep their order in a
-- `position` column; websocket patterns and route methods are JSON arrays of strings.

-- One row. Every registry write starts by bumping `registry_version`, which takes the
-- row lock on PostgreSQL (and runs in BEGIN IMMEDIATE on SQLite), so writers are
-- serialized and the checks they make inside their transaction hold until they commit.
CREATE TABLE store_meta (
    id BIGINT NOT NULL PRIMARY KEY,
    registry_version BIGINT NOT NULL
);
INSERT INTO store_meta (id, registry_version) VALUES (1, 0);

CREATE TABLE settings (
    name TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    name TEXT NOT NULL PRIMARY KEY,
    origin TEXT NOT NULL
);

CREATE TABLE webapps (
    name TEXT NOT NULL,
    provider TEXT NOT NULL,          -- '' for core apps (no provider)
    backend TEXT NOT NULL,
    cache_control TEXT,              -- NULL: none
    websockets TEXT NOT NULL,        -- JSON array of Ant patterns
    auth TEXT NOT NULL,
    origin TEXT NOT NULL,
    PRIMARY KEY (name, provider)
);

CREATE TABLE webapp_tenants (
    app_name TEXT NOT NULL,
    app_provider TEXT NOT NULL,
    position BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    PRIMARY KEY (app_name, app_provider, position),
    FOREIGN KEY (app_name, app_provider) REFERENCES webapps (name, provider) ON DELETE CASCADE,
    FOREIGN KEY (tenant) REFERENCES tenants (name) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX webapp_tenants_tenant ON webapp_tenants (tenant);

CREATE TABLE apis (
    name TEXT NOT NULL,
    provider TEXT NOT NULL,          -- '' when absent
    version BIGINT NOT NULL,
    backend TEXT NOT NULL,
    auth TEXT NOT NULL,
    origin TEXT NOT NULL,
    PRIMARY KEY (name, provider, version)
);

CREATE TABLE api_routes (
    api_name TEXT NOT NULL,
    api_provider TEXT NOT NULL,
    api_version BIGINT NOT NULL,
    position BIGINT NOT NULL,
    pattern TEXT NOT NULL,
    methods TEXT NOT NULL,           -- JSON array; empty: every method
    PRIMARY KEY (api_name, api_provider, api_version, position),
    FOREIGN KEY (api_name, api_provider, api_version) REFERENCES apis (name, provider, version) ON DELETE CASCADE
);

CREATE TABLE api_tenants (
    api_name TEXT NOT NULL,
    api_provider TEXT NOT NULL,
    api_version BIGINT NOT NULL,
    position BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    PRIMARY KEY (api_name, api_provider, api_version, position),
    FOREIGN KEY (api_name, api_provider, api_version) REFERENCES apis (name, provider, version) ON DELETE CASCADE,
    FOREIGN KEY (tenant) REFERENCES tenants (name) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX api_tenants_tenant ON api_tenants (tenant);
