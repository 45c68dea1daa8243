-- Endpoint credential rotation (RS-9): an endpoint may hold a second OAuth client, the
-- *pending* one, between asking for new credentials and confirming that it uses them, so
-- that a rotation that fails half-way never locks the endpoint out. Both clients are
-- accepted meanwhile; confirming makes the pending client the current one (`client_id`).
-- `credentials_ms` is when the current client was issued (registration, re-registration
-- or a confirmed rotation).

ALTER TABLE rs_endpoints ADD COLUMN pending_client_id TEXT;
ALTER TABLE rs_endpoints ADD COLUMN pending_ms BIGINT;
ALTER TABLE rs_endpoints ADD COLUMN credentials_ms BIGINT;
UPDATE rs_endpoints SET credentials_ms = registered_ms WHERE client_id IS NOT NULL;
CREATE INDEX rs_endpoints_client ON rs_endpoints (tenant, client_id);
CREATE INDEX rs_endpoints_pending_client ON rs_endpoints (tenant, pending_client_id);
