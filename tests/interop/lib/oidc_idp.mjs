// A real OpenID provider for tests: npm `oidc-provider` (pinned), on loopback, issuing
// JWT access tokens (RFC 9068) for the audience airlock expects, with a groups claim per
// user. Users "sign in" through a test-only grant type (urn:airlock:test:login, a
// documented oidc-provider extension point) instead of a browser: the token itself is the
// IdP's own, signed with its own keys and published through its own discovery document
// and JWKS. rotate() restarts the provider on the same port with a new signing key first
// (the old one kept for verification), as an IdP's key rotation does.
import http from 'node:http';
import Provider from 'oidc-provider';
import * as jose from 'jose';

export const TEST_GRANT = 'urn:airlock:test:login';

async function signingKey(alg, kid) {
  const { privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  return { ...(await jose.exportJWK(privateKey)), kid, alg, use: 'sig' };
}

// users: { name: { groups: [...], email, roles } }; audience: the resource's audience.
// webClient: {redirectUri} adds a confidential client `airlock-console` (secret
// `console-secret`) for the authorization code flow, and the provider's development
// login and consent pages (any password signs a listed user in).
export async function startIdp({ users, audience = 'airlock', alg = 'ES256', claimsFor, webClient } = {}) {
  let keys = [await signingKey(alg, 'key-1')];
  let server;
  let port = 0;
  let issuer;
  let fetches = { discovery: 0, jwks: 0 };
  const slow = { jwksMs: 0 }; // delay JWKS answers (a slow IdP)

  function build() {
    const provider = new Provider(issuer, {
      clients: [{
        client_id: 'airlock-test', client_secret: 'test-secret',
        grant_types: [TEST_GRANT, 'client_credentials'], redirect_uris: [], response_types: [],
        id_token_signed_response_alg: alg,
      }, ...(webClient ? [{
        client_id: 'airlock-console', client_secret: 'console-secret',
        grant_types: ['authorization_code'], response_types: ['code'],
        redirect_uris: [webClient.redirectUri], token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: alg,
      }] : [])],
      pkce: { required: () => true },
      jwks: { keys },
      ttl: { Grant: 3600, AccessToken: 300 },
      features: {
        devInteractions: { enabled: !!webClient },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => 'urn:airlock',
          useGrantedResource: () => true,
          getResourceServerInfo: () => ({
            scope: 'api', audience, accessTokenFormat: 'jwt', accessTokenTTL: 300,
            jwt: { sign: { alg } },
          }),
        },
      },
      extraTokenClaims: async (ctx, token) => {
        const u = users[token.accountId];
        if (!u) return undefined;
        return claimsFor ? claimsFor(token.accountId, u)
          : { groups: u.groups, email: u.email, email_verified: u.email ? true : undefined, roles: u.roles };
      },
      findAccount: async (ctx, id) => (users[id] ? { accountId: id, claims: () => ({ sub: id }) } : undefined),
    });
    provider.registerGrantType(TEST_GRANT, async (ctx) => {
      const { username } = ctx.oidc.params;
      if (!users[username]) {
        ctx.status = 400;
        ctx.body = { error: 'invalid_grant', error_description: 'no such test user' };
        return;
      }
      const { client } = ctx.oidc;
      const grant = new provider.Grant({ accountId: username, clientId: client.clientId });
      grant.addResourceScope('urn:airlock', 'api');
      const grantId = await grant.save();
      const resourceServer = new provider.ResourceServer('urn:airlock', {
        scope: 'api', audience, accessTokenFormat: 'jwt', accessTokenTTL: 300, jwt: { sign: { alg } },
      });
      const at = new provider.AccessToken({ accountId: username, client, grantId, scope: 'api', resourceServer });
      const value = await at.save();
      ctx.body = { access_token: value, token_type: 'Bearer', expires_in: at.expiration };
    }, new Set(['username']));
    return provider;
  }

  async function listen() {
    const provider = build();
    const cb = provider.callback();
    server = http.createServer((req, res) => {
      if (req.url.startsWith('/.well-known/openid-configuration')) fetches.discovery++;
      if (req.url.startsWith('/jwks')) {
        fetches.jwks++;
        if (slow.jwksMs) {
          setTimeout(() => cb(req, res), slow.jwksMs);
          return;
        }
      }
      cb(req, res);
    });
    await new Promise((r) => server.listen(port, '127.0.0.1', r));
  }

  // the issuer must be known before the provider exists: take a port first
  await new Promise((r) => { server = http.createServer(); server.listen(0, '127.0.0.1', r); });
  port = server.address().port;
  await new Promise((r) => server.close(r));
  issuer = `http://127.0.0.1:${port}`;
  await listen();

  return {
    issuer,
    audience,
    fetches,
    slow,
    async token(username) {
      // a keep-alive socket from before rotate() is gone: one retry
      const post = () => fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: 'Basic ' + Buffer.from('airlock-test:test-secret').toString('base64'),
        },
        body: new URLSearchParams({ grant_type: TEST_GRANT, username }),
      });
      const res = await post().catch(post);
      const body = await res.json();
      if (!res.ok) throw new Error(`token for ${username}: ${res.status} ${JSON.stringify(body)}`);
      return body.access_token;
    },
    // Signs arbitrary claims with the IdP's current key (or a given one): tokens a real
    // IdP would never issue (expired, another audience), signed as if it had.
    async sign(claims, { kid, header = {} } = {}) {
      const jwk = kid ? keys.find((k) => k.kid === kid) : keys[0];
      const key = await jose.importJWK(jwk, jwk.alg);
      return new jose.SignJWT(claims)
        .setProtectedHeader({ alg: jwk.alg, kid: kid ?? jwk.kid, typ: 'at+jwt', ...header })
        .sign(key);
    },
    async rotate() {
      keys = [await signingKey(alg, `key-${keys.length + 1}`), ...keys];
      await new Promise((r) => server.close(r));
      server.closeAllConnections?.();
      await listen();
    },
    async stop() {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
    },
    async down() { await this.stop(); },
    async up() { await listen(); },
  };
}
