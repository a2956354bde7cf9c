// OpenID Connect users against a real OpenID provider (npm oidc-provider, pinned) and the
// official SDK (authToken = the IdP's access token): users run their own sessions and see
// no one else's, roles bound what they may change, bad tokens get clear 401s, the IdP's key
// rotation needs no restart, an unknown-kid flood costs at most one JWKS fetch, and an IdP
// that goes down leaves the keys already loaded working.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import * as jose from 'jose';
import { startServer } from './lib/server.mjs';
import { startIdp } from './lib/oidc_idp.mjs';

const users = {
  alice: { groups: ['auditors', 'staff'], email: 'alice@bank.test' },
  bob: { groups: ['interns'], email: 'bob@bank.test' },
};
let idp;
let srv;
let admin;
let agent;
let env;

const asUser = (token) => new Anthropic({ baseURL: srv.baseURL, apiKey: null, authToken: token, maxRetries: 0 });
async function raw(token, path, init = {}) {
  const res = await fetch(`${srv.baseURL}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}
const now = () => Math.floor(Date.now() / 1000);

before(async () => {
  idp = await startIdp({ users });
  srv = await startServer({
    env: { AIRLOCK_OIDC_ISSUER: idp.issuer, AIRLOCK_OIDC_AUDIENCE: 'airlock' },
  });
  admin = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
  // keys load in the background after start
  for (let i = 0; i < 100 && !/identity provider keys loaded/.test(srv.log()); i++)
    await new Promise((r) => setTimeout(r, 50));
  assert.match(srv.log(), /identity provider keys loaded/);
  agent = await admin.beta.agents.create({ name: 'auditor', model: 'claude-sonnet-4-5' });
  env = await admin.beta.environments.create({ name: 'bank', config: { type: 'self_hosted' } });
});
after(async () => {
  await srv?.stop();
  await idp?.stop();
});

test('a user runs their own sessions and sees no one else\'s', async () => {
  const alice = asUser(await idp.token('alice'));
  const bob = asUser(await idp.token('bob'));
  const adminSession = await admin.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  const mine = await alice.beta.sessions.create({ agent: agent.id, environment_id: env.id, title: 'q4 audit' });
  assert.equal(mine.title, 'q4 audit');

  const listed = [];
  for await (const s of alice.beta.sessions.list()) listed.push(s.id);
  assert.deepEqual(listed, [mine.id]);
  assert.equal((await alice.beta.sessions.retrieve(mine.id)).id, mine.id);
  await alice.beta.sessions.events.send(mine.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'start' }] }],
  });

  // another user's session and the API key's are 404, as if they did not exist
  await assert.rejects(bob.beta.sessions.retrieve(mine.id), (e) => e.status === 404);
  await assert.rejects(alice.beta.sessions.retrieve(adminSession.id), (e) => e.status === 404);
  await assert.rejects(bob.beta.sessions.events.list(mine.id), (e) => e.status === 404);
  await assert.rejects(bob.beta.sessions.events.send(mine.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'hijack' }] }],
  }), (e) => e.status === 404);
  const bobs = [];
  for await (const s of bob.beta.sessions.list()) bobs.push(s.id);
  assert.deepEqual(bobs, []);

  // the API key (an administrator) sees both
  const all = [];
  for await (const s of admin.beta.sessions.list()) all.push(s.id);
  assert.ok(all.includes(mine.id) && all.includes(adminSession.id));
});

test('the user role may read agents but not change them, nor touch keys or tunnels', async () => {
  const alice = asUser(await idp.token('alice'));
  assert.equal((await alice.beta.agents.retrieve(agent.id)).id, agent.id);
  await assert.rejects(alice.beta.agents.create({ name: 'x', model: 'claude-sonnet-4-5' }),
    (e) => e.status === 403 && /role user may not POST \/v1\/agents/.test(e.message));
  const key = await raw(await idp.token('alice'), `/v1/environments/${env.id}/keys`, { method: 'POST', body: '{}' });
  assert.equal(key.status, 403);
  const tunnels = await raw(await idp.token('alice'), '/v1/tunnels');
  assert.equal(tunnels.status, 403);
});

test('bad tokens: each a 401 with the reason, none reaches a route', async () => {
  const base = { iss: idp.issuer, aud: 'airlock', sub: 'alice', iat: now() };
  const cases = [
    [await idp.sign({ ...base, exp: now() - 600 }), /expired/],
    [await idp.sign({ ...base, exp: now() + 600, nbf: now() + 600 }), /not valid for another/],
    [await idp.sign({ ...base, aud: 'someone-else', exp: now() + 300 }), /audience/],
    [await idp.sign({ ...base, iss: 'https://evil.test', exp: now() + 300 }), /issuer/],
    [await idp.sign({ ...base }), /no "exp"/],
    [await idp.sign({ ...base, exp: now() + 300, groups: Array.from({ length: 1500 }, (_, i) => `department-group-${i}`) }), /longer than 16384 bytes/],
    [await idp.sign({ ...base, exp: now() + 300, groups: Array.from({ length: 1200 }, (_, i) => `g${i}`) }), /more than 1000 groups/],
    [await idp.sign({ ...base, exp: now() + 300, groups: [7] }), /not a group name/],
    [new jose.UnsecuredJWT({ ...base, exp: now() + 300 }).encode() + 'c2ln', /algorithm "none" is not accepted/],
  ];
  // HS256 keyed with the IdP's public JWKS text: refused on the algorithm
  const jwks = await (await fetch(`${idp.issuer}/jwks`)).text();
  cases.push([await new jose.SignJWT({ ...base, exp: now() + 300 }).setProtectedHeader({ alg: 'HS256' })
    .sign(new TextEncoder().encode(jwks)), /algorithm "HS256" is not accepted/]);
  const good = await idp.token('alice');
  const [h, p, s] = good.split('.');
  const forged = Buffer.from(JSON.stringify({ ...jose.decodeJwt(good), groups: ['admins'] })).toString('base64url');
  cases.push([`${h}.${forged}.${s}`, /signature does not verify/]);
  // 10,000 groups do not even fit the 64 KiB request head: refused before auth
  const huge = await idp.sign({ ...base, exp: now() + 300, groups: Array.from({ length: 10000 }, (_, i) => `group-${i}`) });
  const h431 = await fetch(`${srv.baseURL}/v1/sessions`, { headers: { authorization: `Bearer ${huge}` } });
  assert.equal(h431.status, 431);
  for (const [token, why] of cases) {
    const r = await raw(token, '/v1/sessions');
    assert.equal(r.status, 401, `${why}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.type, 'authentication_error');
    assert.match(r.body.error.message, why);
  }
});

test('key rotation needs no restart; an unknown-kid flood costs one JWKS fetch', async () => {
  const before = idp.fetches.jwks;
  await idp.rotate();
  const fresh = await idp.token('alice');
  assert.equal(jose.decodeProtectedHeader(fresh).kid, 'key-2');
  const r = await raw(fresh, '/v1/sessions');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(idp.fetches.jwks, before + 1);
  // tokens naming keys that do not exist: refused, and the JWKS is not fetched again
  // within the refetch interval however many arrive
  const flood = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const t = await idp.sign({ iss: idp.issuer, aud: 'airlock', sub: 'x', exp: now() + 300 },
      { kid: 'key-1', header: { kid: `nope-${i}` } });
    return raw(t, '/v1/sessions');
  }));
  for (const f of flood) {
    assert.equal(f.status, 401);
    assert.match(f.body.error.message, /no ES256 key with kid "nope-/);
  }
  assert.equal(idp.fetches.jwks, before + 1);
});

test('with the IdP down, loaded keys keep working and unknown keys fail closed', async () => {
  const token = await idp.token('alice');
  await idp.down();
  try {
    const ok = await raw(token, '/v1/sessions');
    assert.equal(ok.status, 200);
    const stranger = await idp.sign({ iss: idp.issuer, aud: 'airlock', sub: 'x', exp: now() + 300 },
      { kid: 'key-1', header: { kid: 'after-outage' } });
    const r = await raw(stranger, '/v1/sessions');
    assert.equal(r.status, 401);
    assert.match(r.body.error.message, /after-outage/);
  } finally {
    await idp.up();
  }
});

test('until the IdP\'s keys load, user tokens get 503 and API keys work', async () => {
  const down = await startIdp({ users });
  const issuer = down.issuer;
  const token = await down.token('alice');
  await down.stop();
  const s2 = await startServer({ env: { AIRLOCK_OIDC_ISSUER: issuer, AIRLOCK_OIDC_AUDIENCE: 'airlock' } });
  try {
    const res = await fetch(`${s2.baseURL}/v1/sessions`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 503);
    assert.match((await res.json()).error.message, /keys are not loaded yet/);
    const k = await fetch(`${s2.baseURL}/v1/sessions`, { headers: { 'x-api-key': s2.apiKey } });
    assert.equal(k.status, 200);
    assert.match(s2.log(), /identity provider unreachable/);
  } finally {
    await s2.stop();
  }
});

test('a server stopped while a request waits for a JWKS refetch exits cleanly', async () => {
  const s3 = await startServer({ env: { AIRLOCK_OIDC_ISSUER: idp.issuer, AIRLOCK_OIDC_AUDIENCE: 'airlock' } });
  for (let i = 0; i < 100 && !/identity provider keys loaded/.test(s3.log()); i++)
    await new Promise((r) => setTimeout(r, 50));
  idp.slow.jwksMs = 3000;
  try {
    const t = await idp.sign({ iss: idp.issuer, aud: 'airlock', sub: 'x', exp: now() + 300 },
      { kid: 'key-1', header: { kid: 'held-at-shutdown' } });
    const held = fetch(`${s3.baseURL}/v1/sessions`, { headers: { authorization: `Bearer ${t}` } }).catch((e) => e);
    const before = idp.fetches.jwks;
    for (let i = 0; i < 100 && idp.fetches.jwks === before; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(idp.fetches.jwks, before + 1, 'the request is held on a refetch');
    const exited = new Promise((r) => s3.proc.once('exit', (code, sig) => r({ code, sig })));
    s3.proc.kill('SIGTERM');
    const { code, sig } = await exited;
    assert.equal(sig, null, s3.log());
    assert.equal(code, 0, s3.log());
    await held;
  } finally {
    idp.slow.jwksMs = 0;
    await s3.stop();
  }
});

test('an http:// issuer off loopback is refused at start', async () => {
  await assert.rejects(startServer({
    env: { AIRLOCK_OIDC_ISSUER: 'http://idp.example.com', AIRLOCK_OIDC_AUDIENCE: 'airlock' },
  }), /must be an https:\/\/ URL/);
});
