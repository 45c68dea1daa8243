-- Device Connectivity (SPEC section 8, DC-1): the Cumulocity-style device data of each
-- tenant. Portable SQL as in 0004: times are BIGINT unix milliseconds, JSON documents are
-- TEXT, every table is keyed by tenant and every query names it.
--
-- Ids of managed objects, measurements, events, alarms and operations come from one
-- counter (`dc_ids`), so an id is unique across tenants and kinds, as in Cumulocity.
-- Each document column holds the client's JSON object without the fields the server
-- owns (id, self, creationTime, lastUpdated, owner, status…), which have their own columns.

CREATE TABLE dc_ids (
    id INTEGER PRIMARY KEY,           -- always 1: the one counter row
    next_id BIGINT NOT NULL
);
INSERT INTO dc_ids (id, next_id) VALUES (1, 1);

CREATE TABLE dc_managed_objects (
    id BIGINT PRIMARY KEY,
    tenant TEXT NOT NULL,
    owner TEXT NOT NULL,              -- the user that created it (a device's own user)
    type TEXT NOT NULL,               -- '' when the document has none
    name TEXT NOT NULL,               -- '' when the document has none
    document TEXT NOT NULL,           -- JSON object: the fragments
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX dc_managed_objects_tenant ON dc_managed_objects (tenant, id);
CREATE INDEX dc_managed_objects_type ON dc_managed_objects (tenant, type, id);
CREATE INDEX dc_managed_objects_owner ON dc_managed_objects (tenant, owner, id);

-- The top-level fragment names of each managed object, for `fragmentType` queries with
-- exact, case-sensitive matching on both databases.
CREATE TABLE dc_fragments (
    tenant TEXT NOT NULL,
    object_id BIGINT NOT NULL,
    fragment TEXT NOT NULL,
    PRIMARY KEY (tenant, object_id, fragment)
);
CREATE INDEX dc_fragments_name ON dc_fragments (tenant, fragment, object_id);

CREATE TABLE dc_external_ids (
    tenant TEXT NOT NULL,
    type TEXT NOT NULL,
    external_id TEXT NOT NULL,
    object_id BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, type, external_id)
);
CREATE INDEX dc_external_ids_object ON dc_external_ids (tenant, object_id);

CREATE TABLE dc_measurements (
    id BIGINT PRIMARY KEY,
    tenant TEXT NOT NULL,
    source BIGINT NOT NULL,
    type TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    document TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX dc_measurements_source ON dc_measurements (tenant, source, time_ms, id);
CREATE INDEX dc_measurements_time ON dc_measurements (tenant, time_ms, id);

CREATE TABLE dc_events (
    id BIGINT PRIMARY KEY,
    tenant TEXT NOT NULL,
    source BIGINT NOT NULL,
    type TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    document TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX dc_events_source ON dc_events (tenant, source, time_ms, id);
CREATE INDEX dc_events_time ON dc_events (tenant, time_ms, id);

CREATE TABLE dc_alarms (
    id BIGINT PRIMARY KEY,
    tenant TEXT NOT NULL,
    source BIGINT NOT NULL,
    type TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    status TEXT NOT NULL,             -- ACTIVE | ACKNOWLEDGED | CLEARED
    severity TEXT NOT NULL,           -- CRITICAL | MAJOR | MINOR | WARNING
    document TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX dc_alarms_source ON dc_alarms (tenant, source, time_ms, id);
CREATE INDEX dc_alarms_time ON dc_alarms (tenant, time_ms, id);

CREATE TABLE dc_operations (
    id BIGINT PRIMARY KEY,
    tenant TEXT NOT NULL,
    device_id BIGINT NOT NULL,
    status TEXT NOT NULL,             -- PENDING | EXECUTING | SUCCESSFUL | FAILED
    failure_reason TEXT,
    document TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX dc_operations_device ON dc_operations (tenant, device_id, status, id);
CREATE INDEX dc_operations_status ON dc_operations (tenant, status, id);

CREATE TABLE dc_new_device_requests (
    tenant TEXT NOT NULL,
    serial TEXT NOT NULL,
    status TEXT NOT NULL,             -- WAITING_FOR_CONNECTION | PENDING_ACCEPTANCE | ACCEPTED
    owner TEXT NOT NULL,              -- the user that registered it
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, serial)
);
CREATE INDEX dc_new_device_requests_serial ON dc_new_device_requests (serial);
