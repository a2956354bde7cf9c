// Agent identity on MCP calls, checked by a receiver we did not write: an MCP server built
// on the official MCP SDK that lets a request in only when npm `jose` (pinned) verifies its
// bearer JWT against the JWKS the airlock server publishes (issuer, audience = its own URL,
// ES256). The session belongs to a user from a real OpenID provider; the token must name
// the agent, its version, the session and that user with their groups, and live ≤ 5 min.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import * as jose from 'jose';
import { startServer } from './lib/server.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { startIdp } from './lib/oidc_idp.mjs';
import { collect, freePort } from './lib/events.mjs';
import { startLedger } from './lib/mcp_ledger.mjs';

const BIN = process.env.AIRLOCK_BIN;
let idp, mock, srv, mcp, issuer, dir;

// The receiver: lets a request in only when its bearer token verifies (401 otherwise).
async function startVerifyingMcp() {
  const verified = [];
  const refused = [];
  const jwks = () => jose.createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));
  const ledger = await startLedger({
    async gate(req, res) {
      const auth = req.headers.authorization ?? '';
      const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
      try {
        const { payload, protectedHeader } = await jose.jwtVerify(token, jwks(), {
          issuer, audience: ledger.url, algorithms: ['ES256', 'EdDSA', 'RS256'], maxTokenAge: '5m',
        });
        assert.equal(req.headers['x-agent-identity'], token);
        verified.push({ payload, protectedHeader });
        return true;
      } catch (e) {
        refused.push(String(e.code ?? e.message));
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end('{"error":"invalid_token"}');
        return false;
      }
    },
  });
  return { ...ledger, seen: { verified, refused } };
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'airlock-agent-id-'));
  idp = await startIdp({ users: { alice: { groups: ['auditors'], email: 'alice@bank.test' } } });
  mock = await startMockModel([
    { match: 'check-ledger', content: [{ type: 'tool_use', name: 'mcp__ledger__balance', input: {} }] },
    { match: 'balance: 42', content: [{ type: 'text', text: 'the balance is 42' }] },
  ]);
  const port = await freePort();
  issuer = `http://127.0.0.1:${port}`;
  mcp = await startVerifyingMcp();
  srv = await startServer({
    args: ['--listen', `127.0.0.1:${port}`],
    env: {
      AIRLOCK_OIDC_ISSUER: idp.issuer, AIRLOCK_OIDC_AUDIENCE: 'airlock',
      AIRLOCK_AGENT_IDENTITY_ISSUER: issuer,
      AIRLOCK_MODEL_BASE_URL: mock.url, AIRLOCK_MODEL_API_KEY: 'mock-model-key',
    },
  });
  for (let i = 0; i < 100 && !/identity provider keys loaded/.test(srv.log()); i++)
    await new Promise((r) => setTimeout(r, 50));
});

after(async () => {
  await srv?.stop();
  await mcp?.stop();
  await mock?.stop();
  await idp?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the server publishes its agent identity keys without credentials', async () => {
  const jwks = await (await fetch(`${issuer}/.well-known/jwks.json`)).json();
  assert.equal(jwks.keys.length, 1);
  assert.equal(jwks.keys[0].alg, 'ES256');
  assert.equal(jwks.keys[0].kid, await jose.calculateJwkThumbprint(jwks.keys[0]));
  const disc = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  assert.equal(disc.issuer, issuer);
  assert.equal(disc.jwks_uri, `${issuer}/.well-known/jwks.json`);
});

test('every MCP request of a user\'s session carries a token an independent verifier accepts', async () => {
  const admin = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
  const agent = await admin.beta.agents.create({
    name: 'ledger-auditor', model: 'claude-test',
    mcp_servers: [{ type: 'url', name: 'ledger', url: mcp.url }],
    tools: [{ type: 'mcp_toolset', mcp_server_name: 'ledger', default_config: { permission_policy: { type: 'always_allow' } } }],
  });
  const env = await admin.beta.environments.create({ name: 'bank', config: { type: 'self_hosted' } });
  const alice = new Anthropic({ baseURL: srv.baseURL, apiKey: null, authToken: await idp.token('alice'), maxRetries: 0 });
  const s = await alice.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  const ev = collect(await alice.beta.sessions.events.stream(s.id));
  await alice.beta.sessions.events.send(s.id, { events: [{ type: 'user.message', content: [{ type: 'text', text: 'check-ledger' }] }] });
  const result = await ev.waitFor((e) => e.type === 'agent.mcp_tool_result', 0, 'the MCP result');
  assert.notEqual(result.is_error, true, JSON.stringify(result));
  await ev.waitFor((e) => e.type === 'agent.message', 0, 'the answer');
  ev.close();

  assert.deepEqual(mcp.seen.refused, []);
  assert.ok(mcp.seen.verified.length >= 2, 'tools/list and tools/call (and initialize) each verified');
  for (const { payload, protectedHeader } of mcp.seen.verified) {
    assert.equal(protectedHeader.alg, 'ES256');
    assert.equal(payload.iss, issuer);
    assert.equal(payload.aud, mcp.url);
    assert.equal(payload.sub, agent.id);
    assert.deepEqual(payload.agent, { id: agent.id, name: 'ledger-auditor', version: agent.version });
    assert.equal(payload.session_id, s.id);
    assert.equal(payload.on_behalf_of.sub, 'alice');
    assert.equal(payload.on_behalf_of.iss, idp.issuer);
    assert.deepEqual(payload.on_behalf_of.groups, ['auditors']);
    assert.ok(payload.exp - payload.iat <= 300 && payload.exp > payload.iat);
  }
  // one token per operation: not one token reused for the whole session
  const jtis = new Set(mcp.seen.verified.map((v) => v.payload.jti));
  assert.ok(jtis.size >= 2);
});

test('the receiver refuses a request without a token, and a token whose claims were changed', async () => {
  const before = mcp.seen.refused.length;
  const plain = await fetch(mcp.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(plain.status, 401);
  // take a real token and give it to another user
  const real = mcp.seen.verified.at(-1);
  assert.ok(real);
  const jwks = await (await fetch(`${issuer}/.well-known/jwks.json`)).json();
  const key = await jose.importJWK(jwks.keys[0], 'ES256');
  const forged = `${Buffer.from(JSON.stringify(real.protectedHeader)).toString('base64url')}.` +
    `${Buffer.from(JSON.stringify({ ...real.payload, on_behalf_of: { sub: 'mallory', groups: ['admins'] } })).toString('base64url')}.` +
    'AAAA';
  await assert.rejects(jose.jwtVerify(forged, key));
  const r = await fetch(mcp.url, { method: 'POST', headers: { authorization: `Bearer ${forged}`, 'content-type': 'application/json' }, body: '{}' });
  assert.equal(r.status, 401);
  assert.equal(mcp.seen.refused.length, before + 2);
});

test('rotation with overlap: export-issuer publishes the new key and the previous one', async () => {
  const oldKey = path.join(srv.dataDir, 'agent-identity.pem');
  const newKey = path.join(dir, 'new.pem');
  execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', newKey]);
  execFileSync('chmod', ['600', newKey]);
  const out = path.join(dir, 'issuer');
  const env = {
    ...process.env, AIRLOCK_DATA_DIR: srv.dataDir, AIRLOCK_AGENT_IDENTITY_ISSUER: 'https://agents.bank.test',
    AIRLOCK_AGENT_IDENTITY_KEY_FILE: newKey, AIRLOCK_AGENT_IDENTITY_PREVIOUS_KEY_FILE: oldKey,
  };
  execFileSync(BIN, ['agent-identity', 'export-issuer', '--out', out], { env });
  const jwks = JSON.parse(readFileSync(path.join(out, '.well-known/jwks.json'), 'utf8'));
  assert.deepEqual(jwks.keys.map((k) => k.alg), ['EdDSA', 'ES256']);
  const served = await (await fetch(`${issuer}/.well-known/jwks.json`)).json();
  assert.equal(jwks.keys[1].kid, served.keys[0].kid, 'the previous key keeps its kid');
  const disc = JSON.parse(readFileSync(path.join(out, '.well-known/openid-configuration'), 'utf8'));
  assert.equal(disc.jwks_uri, 'https://agents.bank.test/.well-known/jwks.json');
  // a key file others can read is refused
  const loose = path.join(dir, 'loose.pem');
  writeFileSync(loose, readFileSync(newKey));
  execFileSync('chmod', ['644', loose]);
  assert.throws(() => execFileSync(BIN, ['agent-identity', 'export-issuer', '--out', out],
    { env: { ...env, AIRLOCK_AGENT_IDENTITY_KEY_FILE: loose }, stdio: 'pipe' }),
  (e) => /readable by others/.test(String(e.stderr)));
});
