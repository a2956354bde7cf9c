// The official SDK, unmodified, against a real `airlock server`: vaults and their
// credentials (CRUD, pagination, archive, delete), the self-hosted refusals (mcp_oauth,
// environment_variable), URL rules, one live credential per URL, vault_ids on sessions,
// and that a token never comes back: every response body, the server log and the
// database files are searched for every token this test sends.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { startServer } from './lib/server.mjs';

let srv;
let client;
const bodies = []; // every response body the SDK received
const tokens = []; // every secret this test sent

before(async () => {
  srv = await startServer();
  // The SDK's own fetch, wrapped to keep a copy of each response body.
  const recordingFetch = async (url, init) => {
    const res = await fetch(url, init);
    bodies.push({ url: String(url), status: res.status, text: await res.clone().text() });
    return res;
  };
  client = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0, fetch: recordingFetch });
});
after(async () => {
  await srv?.stop();
});

function secret(label) {
  const t = `tok_${label}_${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
  tokens.push(t);
  return t;
}

async function rejects(promise, cls, re) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message}`);
    if (re) assert.match(err.message, re);
    return true;
  });
}

function bearer(url, token) {
  return { type: 'static_bearer', mcp_server_url: url, token };
}

const VAULT_KEYS = ['archived_at', 'created_at', 'display_name', 'id', 'metadata', 'type', 'updated_at'];
const CRED_KEYS = ['archived_at', 'auth', 'created_at', 'display_name', 'id', 'metadata', 'type', 'updated_at', 'vault_id'];

test('vaults: create, retrieve, update, validation', async () => {
  const v = await client.beta.vaults.create({ display_name: 'Alice', metadata: { external_user_id: 'usr_abc123' } });
  assert.deepEqual(Object.keys(v).sort(), VAULT_KEYS);
  assert.equal(v.type, 'vault');
  assert.match(v.id, /^vlt_[A-Za-z0-9]{24}$/);
  assert.equal(v.display_name, 'Alice');
  assert.deepEqual(v.metadata, { external_user_id: 'usr_abc123' });
  assert.equal(v.archived_at, null);
  assert.ok(!Number.isNaN(Date.parse(v.created_at)));
  assert.equal(v.created_at, v.updated_at);
  assert.deepEqual(await client.beta.vaults.retrieve(v.id), v);

  const u = await client.beta.vaults.update(v.id, { display_name: 'Alice B', metadata: { external_user_id: null, team: 'x' } });
  assert.equal(u.display_name, 'Alice B');
  assert.deepEqual(u.metadata, { team: 'x' });
  assert.notEqual(u.updated_at, v.updated_at);
  // null display_name and metadata leave both as they are; a no-op changes nothing.
  const same = await client.beta.vaults.update(v.id, { display_name: null, metadata: null });
  assert.deepEqual(same, u);

  await rejects(client.beta.vaults.create({}), Anthropic.BadRequestError, /display_name: Field required/);
  await rejects(client.beta.vaults.create({ display_name: '' }), Anthropic.BadRequestError, /display_name: must be 1 to 255/);
  await rejects(client.beta.vaults.create({ display_name: 'x'.repeat(256) }), Anthropic.BadRequestError, /1 to 255/);
  const v255 = await client.beta.vaults.create({ display_name: 'é'.repeat(255) }); // characters, not bytes
  assert.equal(v255.display_name.length, 255);
  await rejects(client.beta.vaults.create({ display_name: 'x', nope: 1 }), Anthropic.BadRequestError, /nope: Extra inputs/);
  const many = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));
  await assert.rejects(client.beta.vaults.create({ display_name: 'm', metadata: many }), (err) => {
    assert.ok(err instanceof Anthropic.BadRequestError);
    assert.equal(err.error.error.details.error_code, 'invalid_metadata');
    return true;
  });
  await rejects(client.beta.vaults.retrieve('vlt_doesnotexist'), Anthropic.NotFoundError, /vault vlt_doesnotexist not found/);
  await rejects(client.beta.vaults.update('vlt_doesnotexist', { display_name: 'x' }), Anthropic.NotFoundError);
});

test('vaults: list pages, archive, delete', async () => {
  const mine = [];
  for (let i = 0; i < 5; i++) mine.push((await client.beta.vaults.create({ display_name: `page ${i}` })).id);

  const first = await client.beta.vaults.list({ limit: 2 });
  assert.equal(first.data.length, 2);
  assert.ok(first.hasNextPage());
  assert.deepEqual(first.data.map((v) => v.id), [mine[4], mine[3]]); // newest first
  const seen = [];
  for await (const v of client.beta.vaults.list({ limit: 2 })) seen.push(v.id);
  assert.equal(new Set(seen).size, seen.length, 'no vault twice across pages');
  for (const id of mine) assert.ok(seen.includes(id));

  const arch = await client.beta.vaults.archive(mine[0]);
  assert.ok(arch.archived_at);
  assert.equal(arch.updated_at, arch.archived_at);
  assert.deepEqual(await client.beta.vaults.archive(mine[0]), arch, 'archiving twice returns the archived vault');
  const live = [];
  for await (const v of client.beta.vaults.list()) live.push(v.id);
  assert.ok(!live.includes(mine[0]));
  const all = [];
  for await (const v of client.beta.vaults.list({ include_archived: true })) all.push(v.id);
  assert.ok(all.includes(mine[0]));
  await rejects(client.beta.vaults.update(mine[0], { display_name: 'x' }), Anthropic.BadRequestError, /archived/);
  await rejects(
    client.beta.vaults.credentials.create(mine[0], { auth: bearer('https://a.example.test/mcp', secret('archived')) }),
    Anthropic.BadRequestError,
    /archived/,
  );

  const del = await client.beta.vaults.delete(mine[1]);
  assert.deepEqual(del, { id: mine[1], type: 'vault_deleted' });
  await rejects(client.beta.vaults.retrieve(mine[1]), Anthropic.NotFoundError);
  await rejects(client.beta.vaults.delete(mine[1]), Anthropic.NotFoundError);
  await rejects(client.beta.vaults.credentials.list(mine[1]), Anthropic.NotFoundError);
  // An archived vault can still be deleted.
  assert.equal((await client.beta.vaults.delete(mine[0])).type, 'vault_deleted');
});

test('credentials: static_bearer CRUD without the token ever coming back', async () => {
  const v = await client.beta.vaults.create({ display_name: 'creds' });
  const tok = secret('gh');
  const c = await client.beta.vaults.credentials.create(v.id, {
    display_name: 'GitHub MCP',
    metadata: { env: 'prod' },
    auth: bearer('https://mcp.github.example.test/mcp', tok),
  });
  assert.deepEqual(Object.keys(c).sort(), CRED_KEYS);
  assert.equal(c.type, 'vault_credential');
  assert.match(c.id, /^vcrd_[A-Za-z0-9]{24}$/);
  assert.equal(c.vault_id, v.id);
  assert.equal(c.display_name, 'GitHub MCP');
  assert.deepEqual(c.metadata, { env: 'prod' });
  assert.deepEqual(c.auth, { type: 'static_bearer', mcp_server_url: 'https://mcp.github.example.test/mcp' });
  assert.equal(c.archived_at, null);
  assert.deepEqual(await client.beta.vaults.credentials.retrieve(c.id, { vault_id: v.id }), c);

  const plain = await client.beta.vaults.credentials.create(v.id, { auth: bearer('http://127.0.0.1:9/mcp', secret('loop')) });
  assert.equal(plain.display_name, null, 'nullable fields are present as null');
  assert.deepEqual(plain.metadata, {});

  // Rotate the token: same credential, new updated_at, still no token.
  const rotated = await client.beta.vaults.credentials.update(c.id, {
    vault_id: v.id,
    auth: { type: 'static_bearer', token: secret('rotated') },
  });
  assert.deepEqual(rotated.auth, c.auth);
  assert.notEqual(rotated.updated_at, c.updated_at);
  const renamed = await client.beta.vaults.credentials.update(c.id, {
    vault_id: v.id,
    display_name: null,
    metadata: { env: null, owner: 'me' },
  });
  assert.equal(renamed.display_name, null);
  assert.deepEqual(renamed.metadata, { owner: 'me' });
  await rejects(
    client.beta.vaults.credentials.update(c.id, {
      vault_id: v.id,
      auth: { type: 'static_bearer', mcp_server_url: 'https://elsewhere.test/' },
    }),
    Anthropic.BadRequestError,
    /mcp_server_url: immutable/,
  );
  await rejects(
    client.beta.vaults.credentials.update(c.id, { vault_id: v.id, auth: { type: 'mcp_oauth', access_token: secret('o') } }),
    Anthropic.BadRequestError,
    /type cannot change/,
  );
  await rejects(
    client.beta.vaults.credentials.update(c.id, { vault_id: v.id, auth: { type: 'static_bearer', token: 'has space' } }),
    Anthropic.BadRequestError,
    /visible ASCII/,
  );

  // Pages of credentials.
  await client.beta.vaults.credentials.create(v.id, { auth: bearer('https://third.example.test/', secret('third')) });
  const p1 = await client.beta.vaults.credentials.list(v.id, { limit: 2 });
  assert.equal(p1.data.length, 2);
  assert.ok(p1.hasNextPage());
  const ids = [];
  for await (const x of client.beta.vaults.credentials.list(v.id, { limit: 2 })) ids.push(x.id);
  assert.equal(ids.length, 3);
  assert.equal(new Set(ids).size, 3);

  // Archive: permanent, read-only, out of the default list.
  const a = await client.beta.vaults.credentials.archive(c.id, { vault_id: v.id });
  assert.ok(a.archived_at);
  await rejects(
    client.beta.vaults.credentials.update(c.id, { vault_id: v.id, display_name: 'x' }),
    Anthropic.BadRequestError,
    /archived/,
  );
  const liveIds = (await client.beta.vaults.credentials.list(v.id)).data.map((x) => x.id);
  assert.ok(!liveIds.includes(c.id));
  const allIds = (await client.beta.vaults.credentials.list(v.id, { include_archived: true })).data.map((x) => x.id);
  assert.ok(allIds.includes(c.id));

  const del = await client.beta.vaults.credentials.delete(plain.id, { vault_id: v.id });
  assert.deepEqual(del, { id: plain.id, type: 'vault_credential_deleted' });
  await rejects(client.beta.vaults.credentials.retrieve(plain.id, { vault_id: v.id }), Anthropic.NotFoundError);
  // A credential is only reachable through its own vault.
  const other = await client.beta.vaults.create({ display_name: 'other' });
  await rejects(client.beta.vaults.credentials.retrieve(c.id, { vault_id: other.id }), Anthropic.NotFoundError);
  await rejects(client.beta.vaults.credentials.mcpOAuthValidate(c.id, { vault_id: v.id }), Anthropic.BadRequestError, /mcp_oauth/);

  // Archiving the vault archives what is left in it.
  await client.beta.vaults.archive(v.id);
  const after = (await client.beta.vaults.credentials.list(v.id, { include_archived: true })).data;
  assert.ok(after.length === 2 && after.every((x) => x.archived_at), JSON.stringify(after));
});

test('credentials: self-hosted refusals and URL rules', async () => {
  const v = await client.beta.vaults.create({ display_name: 'rules' });
  await rejects(
    client.beta.vaults.credentials.create(v.id, {
      auth: { type: 'mcp_oauth', mcp_server_url: 'https://mcp.example.test/', access_token: secret('oauth') },
    }),
    Anthropic.BadRequestError,
    /mcp_oauth credentials are not supported by a self-hosted server/,
  );
  await rejects(
    client.beta.vaults.credentials.create(v.id, {
      auth: { type: 'environment_variable', secret_name: 'API_KEY', secret_value: secret('env'), networking: { type: 'unrestricted' } },
    }),
    Anthropic.BadRequestError,
    /auth\.networking\.type: must be 'limited'/, // a secret goes to listed hosts only
  );
  const bad = [
    ['http://mcp.example.test/mcp', /must use https/],
    ['ftp://mcp.example.test/', /absolute https:\/\/ URL/],
    ['mcp.example.test/mcp', /absolute https:\/\/ URL/],
    ['https://user:pw@mcp.example.test/', /user information/],
    ['https://mcp.example.test/#x', /fragment/],
    ['https://mcp example.test/', /printable ASCII/],
    ['https:///mcp', /no host/],
    [`https://mcp.example.test/${'a'.repeat(2100)}`, /1 to 2048 bytes/],
  ];
  for (const [url, re] of bad) {
    await rejects(client.beta.vaults.credentials.create(v.id, { auth: bearer(url, secret('url')) }), Anthropic.BadRequestError, re);
  }
  await rejects(
    client.beta.vaults.credentials.create(v.id, { auth: { type: 'static_bearer', mcp_server_url: 'https://t.test/' } }),
    Anthropic.BadRequestError,
    /auth.token: Field required/,
  );
  await rejects(
    client.beta.vaults.credentials.create(v.id, { auth: bearer('https://t.test/', `${secret('crlf')}\r\nX-Evil: 1`) }),
    Anthropic.BadRequestError,
    /visible ASCII/,
  );
  await rejects(
    client.beta.vaults.credentials.create('vlt_doesnotexist', { auth: bearer('https://t.test/', secret('nf')) }),
    Anthropic.NotFoundError,
  );

  // One live credential per URL and vault (a trailing slash names the same server).
  const first = await client.beta.vaults.credentials.create(v.id, { auth: bearer('https://dup.example.test/mcp', secret('dup1')) });
  await rejects(
    client.beta.vaults.credentials.create(v.id, { auth: bearer('https://dup.example.test/mcp', secret('dup2')) }),
    Anthropic.ConflictError,
    /already has a live credential/,
  );
  await rejects(
    client.beta.vaults.credentials.create(v.id, { auth: bearer('https://dup.example.test/mcp/', secret('dup3')) }),
    Anthropic.ConflictError,
  );
  // Another vault may hold the same URL; an archived credential frees it.
  const w = await client.beta.vaults.create({ display_name: 'second' });
  await client.beta.vaults.credentials.create(w.id, { auth: bearer('https://dup.example.test/mcp', secret('dup4')) });
  await client.beta.vaults.credentials.archive(first.id, { vault_id: v.id });
  const again = await client.beta.vaults.credentials.create(v.id, { auth: bearer('https://dup.example.test/mcp/', secret('dup5')) });
  assert.equal(again.auth.mcp_server_url, 'https://dup.example.test/mcp/');
});

test('sessions: vault_ids must name live vaults', async () => {
  const agent = await client.beta.agents.create({ name: 'v', model: 'claude-opus-4-8' });
  const env = await client.beta.environments.create({ name: 'v', config: { type: 'self_hosted' } });
  const v = await client.beta.vaults.create({ display_name: 'session vault' });
  const s = await client.beta.sessions.create({ agent: agent.id, environment_id: env.id, vault_ids: [v.id] });
  assert.deepEqual(s.vault_ids, [v.id]);
  await rejects(
    client.beta.sessions.create({ agent: agent.id, environment_id: env.id, vault_ids: ['vlt_doesnotexist'] }),
    Anthropic.BadRequestError,
    /vault_ids\[0\]: vault vlt_doesnotexist not found/,
  );
  const gone = await client.beta.vaults.create({ display_name: 'archived' });
  await client.beta.vaults.archive(gone.id);
  await rejects(
    client.beta.sessions.create({ agent: agent.id, environment_id: env.id, vault_ids: [v.id, gone.id] }),
    Anthropic.BadRequestError,
    /vault_ids\[1\]/,
  );
  await rejects(client.beta.sessions.update(s.id, { vault_ids: [] }), Anthropic.BadRequestError, /vault_ids/);
});

test('no token in any response, the server log or the database files', async () => {
  assert.ok(tokens.length >= 15, `tokens sent: ${tokens.length}`);
  assert.ok(bodies.length >= 40, `responses seen: ${bodies.length}`);
  for (const b of bodies) {
    for (const t of tokens) assert.ok(!b.text.includes(t), `${b.url} (${b.status}) returned a token: ${b.text.slice(0, 300)}`);
    assert.ok(!/"(token|access_token|secret_value)"/.test(b.text), `${b.url} has a secret field: ${b.text.slice(0, 300)}`);
  }
  const log = srv.log();
  for (const t of tokens) assert.ok(!log.includes(t), 'server log holds a token');
  for (const name of ['airlock.db', 'airlock.db-wal']) {
    const p = path.join(srv.dataDir, name);
    if (!existsSync(p)) continue;
    const bytes = readFileSync(p);
    for (const t of tokens) assert.equal(bytes.indexOf(t), -1, `${name} holds a plaintext token`);
  }
});
