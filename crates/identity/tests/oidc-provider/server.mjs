// An OpenID Connect provider for Portico's end-to-end tests: the `oidc-provider` package,
// unmodified, on loopback, with its development login pages (any login name signs in with
// that name as `sub`). Portico is its one client.
//
// Environment: OIDC_PORT (0 picks a free port), OIDC_CLIENT_ID, OIDC_CLIENT_SECRET,
// OIDC_REDIRECT_URIS (comma-separated). Prints `issuer=<url>` once it listens.
import Provider from 'oidc-provider';

const env = (name) => {
  const value = process.env[name];
  if (value === undefined) {
    console.error(`oidc-provider: ${name} is not set`);
    process.exit(2);
  }
  return value;
};

const server = (await import('node:http')).createServer();
server.listen(Number(process.env.OIDC_PORT ?? 0), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: env('OIDC_CLIENT_ID'),
      client_secret: env('OIDC_CLIENT_SECRET'),
      redirect_uris: env('OIDC_REDIRECT_URIS').split(','),
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    async findAccount(_ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return { sub, email: `${sub}@example.test`, email_verified: true, name: sub };
        },
      };
    },
    pkce: { required: () => false },
    cookies: { keys: ['portico-test-only'] },
  });
  // Loopback over plain HTTP: the provider would otherwise insist on TLS cookies.
  provider.proxy = true;
  server.on('request', provider.callback());
  console.log(`issuer=${issuer}`);
});
