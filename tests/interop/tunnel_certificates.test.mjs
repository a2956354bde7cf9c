// /v1/tunnels/{id}/certificates through the official SDK (@anthropic-ai/sdk's
// beta.tunnels.certificates): create, list with pagination, retrieve, archive; the
// two-live limit and rotation; and each bad upload a clear 4xx that stores nothing.
// Certificates come from the openssl command line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { startServer } from './lib/server.mjs';

let tmp, srv, client, tunnel;

// A self-signed certificate with the given key and extensions; returns its PEM.
function mkcert(name, { key = ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], ext = [] } = {}) {
  writeFileSync(path.join(tmp, 'min.cnf'), '[req]\ndistinguished_name=dn\n[dn]\n');
  execFileSync('openssl', ['req', '-x509', '-config', 'min.cnf', '-newkey', ...key, '-nodes',
    '-days', '30', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-subj', `/CN=${name}`,
    ...ext.flatMap((e) => ['-addext', e])], { cwd: tmp, stdio: 'ignore' });
  return readFileSync(path.join(tmp, `${name}.pem`), 'utf8');
}

const CA_EXT = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign',
  'subjectKeyIdentifier=hash'];
const mkca = (name, key) => mkcert(name, { key, ext: CA_EXT });

function fingerprint(pem) {
  return new X509Certificate(pem).fingerprint256.replaceAll(':', '').toLowerCase();
}

async function rejects(p, status, re) {
  const err = await p.then(() => null, (e) => e);
  assert.ok(err, 'request must fail');
  assert.equal(err.status, status, `status of ${err.message}`);
  assert.match(err.error?.error?.message ?? '', re);
}

async function all(tunnelId, query = {}) {
  const out = [];
  for await (const c of client.beta.tunnels.certificates.list(tunnelId, { limit: 1, ...query }))
    out.push(c);
  return out;
}

before(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'airlock-tcert-'));
  srv = await startServer();
  client = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
  tunnel = await client.beta.tunnels.create({ display_name: 'certs' });
});

after(async () => {
  if (srv) await srv.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('create, retrieve, list, archive; two live at once; rotation', async () => {
  const pemA = mkca('caA');
  const a = await client.beta.tunnels.certificates.create(tunnel.id, { ca_certificate_pem: pemA });
  assert.equal(a.type, 'tunnel_certificate');
  assert.match(a.id, /^tcrt_/);
  assert.equal(a.tunnel_id, tunnel.id);
  assert.equal(a.fingerprint, fingerprint(pemA));
  assert.equal(a.archived_at, null);
  const validTo = Date.parse(new X509Certificate(pemA).validTo);
  assert.equal(Date.parse(a.expires_at), validTo);
  assert.ok(Date.parse(a.created_at) <= Date.now());

  await rejects(client.beta.tunnels.certificates.create(tunnel.id, { ca_certificate_pem: pemA }),
    409, /already registered/);
  const pemB = mkca('caB', ['rsa:2048']);
  const b = await client.beta.tunnels.certificates.create(tunnel.id, { ca_certificate_pem: pemB });
  const pemC = mkca('caC', ['ec', '-pkeyopt', 'ec_paramgen_curve:P-384']);
  await rejects(client.beta.tunnels.certificates.create(tunnel.id, { ca_certificate_pem: pemC }),
    409, /already has 2 active certificates/);

  assert.deepEqual((await all(tunnel.id)).map((c) => c.id), [b.id, a.id], 'newest first, paged');
  const got = await client.beta.tunnels.certificates.retrieve(a.id, { tunnel_id: tunnel.id });
  assert.deepEqual(got, a);

  const archived = await client.beta.tunnels.certificates.archive(a.id, { tunnel_id: tunnel.id });
  assert.ok(archived.archived_at, 'archived_at set');
  const again = await client.beta.tunnels.certificates.archive(a.id, { tunnel_id: tunnel.id });
  assert.equal(again.archived_at, archived.archived_at, 'archive is idempotent');
  assert.deepEqual((await all(tunnel.id)).map((c) => c.id), [b.id]);
  assert.deepEqual((await all(tunnel.id, { include_archived: true })).map((c) => c.id),
    [b.id, a.id]);
  // rotation: with A archived, C fits beside B
  const c = await client.beta.tunnels.certificates.create(tunnel.id, { ca_certificate_pem: pemC });
  assert.deepEqual((await all(tunnel.id)).map((x) => x.id), [c.id, b.id]);
});

test('bad uploads are clear 4xx answers and store nothing', async () => {
  const t = await client.beta.tunnels.create({ display_name: 'bad input' });
  const create = (pem) => client.beta.tunnels.certificates.create(t.id, { ca_certificate_pem: pem });
  const good = mkca('good');
  await rejects(create(mkcert('leaf', { ext: ['basicConstraints=critical,CA:FALSE'] })), 400,
    /not a CA certificate/);
  await rejects(create(mkcert('noku', { ext: ['basicConstraints=critical,CA:TRUE',
    'subjectKeyIdentifier=hash'] })), 400, /keyCertSign/);
  await rejects(create(mkca('weak', ['rsa:1024'])), 400, /RSA key of 1024 bits/);
  await rejects(create(mkca('ed', ['ed25519'])), 400, /key type ED25519 is not allowed/);
  await rejects(create(good + readFileSync(path.join(tmp, 'good.key'), 'utf8')), 400,
    /private key material/);
  await rejects(create(good + good), 400, /contains 2 certificates/);
  await rejects(create('x'.repeat(9000)), 400, /at most 8192/);
  await rejects(create('not a certificate'), 400, /one PEM block/);
  const raw = await fetch(`${srv.baseURL}/v1/tunnels/${t.id}/certificates`, {
    method: 'POST',
    headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json' },
    body: JSON.stringify({ ca_certificate_pem: good, extra: 1 }),
  });
  assert.equal(raw.status, 400);
  const missing = await fetch(`${srv.baseURL}/v1/tunnels/${t.id}/certificates`, {
    method: 'POST',
    headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json' },
    body: '{}',
  });
  assert.equal(missing.status, 400);
  assert.match((await missing.json()).error.message, /ca_certificate_pem: required/);
  assert.deepEqual(await all(t.id, { include_archived: true }), [], 'nothing stored');

  await rejects(client.beta.tunnels.certificates.create('tnl_nope', { ca_certificate_pem: good }),
    404, /tunnel tnl_nope not found/);
  await rejects(client.beta.tunnels.certificates.retrieve('tcrt_nope', { tunnel_id: t.id }), 404,
    /tunnel certificate tcrt_nope not found/);
  await rejects(client.beta.tunnels.certificates.archive('tcrt_nope', { tunnel_id: t.id }), 404,
    /not found/);
  // a certificate is reached only through its own tunnel
  const mine = await create(good);
  const other = await client.beta.tunnels.create({ display_name: 'other' });
  await rejects(client.beta.tunnels.certificates.retrieve(mine.id, { tunnel_id: other.id }), 404,
    /not found/);
  await client.beta.tunnels.archive(t.id);
  await rejects(create(mkca('late')), 409, /is archived/);
  // an archived tunnel's certificates stay readable
  assert.equal((await all(t.id)).length, 1);
});
