-- Identity (SPEC section 6): users, sessions, OAuth clients and grants, signing keys,
-- external OpenID Connect providers. Portable SQL as in 0001. Times are BIGINT unix
-- milliseconds; flags are BIGINT 0/1; lists are JSON arrays of strings. Secrets that
-- Portico only has to recognise (passwords, session ids, client secrets, codes, refresh
-- tokens) are stored as hashes; what Portico must use (signing keys, an OIDC client secret)
-- is stored as is.
-- No foreign key to `tenants`: the operator's tenant `management` is not a registry tenant,
-- and removing a tenant from the registry must not depend on its identity data.

CREATE TABLE users (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,               -- operator | admin | site-owner | user
    password_hash TEXT,               -- argon2id PHC string; NULL for an external (OIDC) user
    external_issuer TEXT,             -- OIDC users: the provider's issuer
    external_subject TEXT,            -- OIDC users: the provider's `sub`
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE UNIQUE INDEX users_external ON users (tenant, external_issuer, external_subject);

CREATE TABLE sessions (
    id_hash TEXT NOT NULL PRIMARY KEY, -- hex SHA-256 of the session id
    tenant TEXT NOT NULL,
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,               -- the user's role when the session began
    created_ms BIGINT NOT NULL,
    last_used_ms BIGINT NOT NULL,
    csrf_token TEXT NOT NULL,
    ended_ms BIGINT                   -- NULL while the session lasts
);
CREATE INDEX sessions_user ON sessions (tenant, user_name);

CREATE TABLE oauth_clients (
    client_id TEXT NOT NULL PRIMARY KEY, -- unique across tenants: the token endpoint finds the tenant by it
    tenant TEXT NOT NULL,
    secret_hash TEXT,                 -- hex SHA-256 of the secret; NULL for a public client (PKCE only)
    name TEXT NOT NULL,
    grant_types TEXT NOT NULL,        -- JSON array
    scopes TEXT NOT NULL,             -- JSON array: the most a token of this client may hold
    redirect_uris TEXT NOT NULL,      -- JSON array, compared exactly
    active BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX oauth_clients_tenant ON oauth_clients (tenant);

CREATE TABLE signing_keys (
    kid TEXT NOT NULL PRIMARY KEY,
    algorithm TEXT NOT NULL,          -- ES256
    private_key_pem TEXT NOT NULL,    -- PKCS#8
    created_ms BIGINT NOT NULL,
    retired_ms BIGINT,                -- NULL: may still sign
    publish_until_ms BIGINT           -- NULL: published; else published until then
);

CREATE TABLE authorization_codes (
    code_hash TEXT NOT NULL PRIMARY KEY,
    client_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    user_name TEXT NOT NULL,
    code_challenge TEXT NOT NULL,     -- PKCE S256
    redirect_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,             -- JSON array
    expires_ms BIGINT NOT NULL,
    used BIGINT NOT NULL
);

CREATE TABLE refresh_tokens (
    token_hash TEXT NOT NULL PRIMARY KEY,
    chain_id TEXT NOT NULL,           -- every rotation of one grant shares it
    client_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    subject TEXT NOT NULL,
    scopes TEXT NOT NULL,             -- JSON array
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    revoked BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_chain ON refresh_tokens (chain_id);

CREATE TABLE oidc_providers (
    tenant TEXT NOT NULL PRIMARY KEY, -- one external provider per tenant
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
