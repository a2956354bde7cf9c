// The official SDK, unmodified, against a real `airlock server`: /v1/files. Upload
// (multipart, streamed to disk), metadata, list with pages, download byte for byte,
// delete; the size limit (413, nothing stored), truncated and malformed bodies (400,
// nothing stored), a caller without a key, and files surviving kill -9.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Anthropic, { toFile } from '@anthropic-ai/sdk';
import { startServer } from './lib/server.mjs';
import { envWithKey, sessionsToken } from './lib/session.mjs';
import { all, rejectsStatus } from './lib/sdk.mjs';

const LIMIT = 4 * 1024 * 1024;
let srv;
let client;
let dataDir;

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'airlock-files-'));
  srv = await startServer({ dataDir, env: { AIRLOCK_FILES_MAX_BYTES: String(LIMIT) } });
  client = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
});
after(async () => {
  await srv?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const FILE_KEYS = ['created_at', 'downloadable', 'filename', 'id', 'mime_type', 'size_bytes', 'type'];
const stored = () => readdirSync(path.join(dataDir, 'files')).filter((n) => n !== 'tmp').sort();
const pending = () => readdirSync(path.join(dataDir, 'files', 'tmp'));

// A raw multipart POST, for bodies the SDK would never send.
function rawPost(body, { contentType, headers = {}, cut } = {}) {
  return new Promise((resolve, reject) => {
    const req = request(`${srv.baseURL}/v1/files`, {
      method: 'POST',
      headers: { 'x-api-key': srv.apiKey, 'content-type': contentType, 'content-length': body.length, ...headers },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: text ? JSON.parse(text) : null }));
    });
    req.on('error', reject);
    if (cut !== undefined) {
      // the client goes away part-way through the body
      req.write(body.subarray(0, cut), () => setTimeout(() => { req.destroy(); resolve({ status: 'cut' }); }, 200));
      return;
    }
    req.end(body);
  });
}

const B = 'xYz123';
const part = (name, filename, data, type = 'application/octet-stream') => Buffer.concat([
  Buffer.from(`--${B}\r\nContent-Disposition: form-data; name="${name}"${filename ? `; filename="${filename}"` : ''}\r\n` +
    `Content-Type: ${type}\r\n\r\n`), Buffer.from(data), Buffer.from('\r\n')]);
const close = Buffer.from(`--${B}--\r\n`);
const MP = `multipart/form-data; boundary=${B}`;

test('files: upload, metadata, download byte for byte, delete', async () => {
  const bytes = randomBytes(3 * 1024 * 1024 + 17);
  const f = await client.beta.files.upload({ file: await toFile(bytes, 'report.bin', { type: 'application/x-report' }) });
  assert.deepEqual(Object.keys(f).sort(), FILE_KEYS);
  assert.equal(f.type, 'file');
  assert.match(f.id, /^file_[A-Za-z0-9]{24}$/);
  assert.equal(f.filename, 'report.bin');
  assert.equal(f.mime_type, 'application/x-report');
  assert.equal(f.size_bytes, bytes.length);
  assert.ok(!Number.isNaN(Date.parse(f.created_at)));
  assert.equal(f.downloadable, true);
  // stored 0600 under the data directory, nothing left pending
  const st = statSync(path.join(dataDir, 'files', f.id));
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(st.size, bytes.length);
  assert.deepEqual(pending(), []);

  assert.deepEqual(await client.beta.files.retrieveMetadata(f.id), f);
  const res = await client.beta.files.download(f.id);
  assert.equal(res.headers.get('content-type'), 'application/x-report');
  const got = Buffer.from(await res.arrayBuffer());
  assert.equal(got.length, bytes.length);
  assert.ok(got.equals(bytes), 'download differs from upload');

  const text = await client.beta.files.upload({ file: await toFile(Buffer.from('héllo\n'), 'nöte.txt', { type: 'text/plain' }) });
  assert.equal(text.filename, 'nöte.txt');
  assert.equal(await (await client.beta.files.download(text.id)).text(), 'héllo\n');

  assert.deepEqual(await client.beta.files.delete(f.id), { id: f.id, type: 'file_deleted' });
  assert.ok(!stored().includes(f.id), 'bytes removed with the row');
  await rejectsStatus(client.beta.files.retrieveMetadata(f.id), 404);
  await rejectsStatus(client.beta.files.download(f.id), 404);
  await rejectsStatus(client.beta.files.delete(f.id), 404);
  await client.beta.files.delete(text.id);
});

test('files: list pages newest first through page cursors', async () => {
  const ids = [];
  for (let i = 0; i < 7; i++)
    ids.push((await client.beta.files.upload({ file: await toFile(Buffer.from(`file ${i}`), `f${i}.txt`) })).id);
  const first = await client.beta.files.list({ limit: 3 });
  assert.equal(first.data.length, 3);
  assert.ok(first.next_page, 'a cursor to the next page');
  assert.deepEqual(first.data.map((x) => x.id), ids.slice(-3).reverse());
  const every = await all(client.beta.files.list({ limit: 3 }));
  assert.deepEqual(every.map((x) => x.id), [...ids].reverse());
  for (const x of every) assert.deepEqual(Object.keys(x).sort(), FILE_KEYS);
  // by id: those that exist, in the order asked
  const picked = await client.beta.files.list({ ids: [ids[2], 'file_nosuchfile000000000000000', ids[0]] });
  assert.deepEqual(picked.data.map((x) => x.id), [ids[2], ids[0]]);
  assert.equal(picked.next_page, null);
  // a scope no file has
  assert.deepEqual((await client.beta.files.list({ scope_id: 'sesn_none' })).data, []);
  await rejectsStatus(client.beta.files.list({ limit: 0 }), 400);
  for (const id of ids) await client.beta.files.delete(id);
  assert.deepEqual((await client.beta.files.list()).data, []);
  assert.deepEqual(stored(), []);
});

test('files: over the size limit is 413 and stores nothing', async () => {
  const before = stored();
  await rejectsStatus(client.beta.files.upload({ file: await toFile(randomBytes(LIMIT + 1), 'big.bin') }), 413);
  // far more than the socket buffers hold: refused on its length at the head, the rest
  // of the body drained so the SDK reads the 413 (it got a reset before: write ECONNRESET)
  await rejectsStatus(client.beta.files.upload({ file: await toFile(randomBytes(48 << 20), 'huge.bin') }), 413);
  // without a length up front (chunked): refused while streaming
  const r = await new Promise((resolve, reject) => {
    const req = request(`${srv.baseURL}/v1/files`, { method: 'POST', headers: { 'x-api-key': srv.apiKey, 'content-type': MP } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.write(part('file', 'big.bin', randomBytes(LIMIT + 4096)));
    req.end(close);
  });
  assert.equal(r, 413);
  // exactly the limit is fine
  const ok = await client.beta.files.upload({ file: await toFile(randomBytes(LIMIT), 'edge.bin') });
  assert.equal(ok.size_bytes, LIMIT);
  await client.beta.files.delete(ok.id);
  assert.deepEqual(stored(), before);
  assert.deepEqual(pending(), []);
});

test('files: truncated and malformed bodies are 400 and store nothing', async () => {
  const body = Buffer.concat([part('file', 'a.txt', 'hello'), close]);
  const cases = [
    ['no closing boundary', body.subarray(0, body.length - close.length), MP, /closing boundary/],
    ['cut inside the data', body.subarray(0, 80), MP, /closing boundary/],
    ['not multipart', Buffer.from('{"file":"x"}'), 'application/json', /multipart\/form-data/],
    ['no boundary', body, 'multipart/form-data', /multipart\/form-data/],
    ['no file part', Buffer.concat([part('other', null, 'x'), close]), MP, /unknown field/],
    ['two file parts', Buffer.concat([part('file', 'a', 'x'), part('file', 'b', 'y'), close]), MP, /more than one/],
    ['no filename', Buffer.concat([part('file', null, 'x'), close]), MP, /filename/],
    ['expiry asked', Buffer.concat([part('file', 'a', 'x'), part('expires_in_seconds', null, '60'), close]), MP, /not supported/],
    ['folded header', Buffer.from(`--${B}\r\nContent-Disposition: form-data;\r\n name="file"\r\n\r\nx\r\n--${B}--`), MP, /folded/],
    ['empty body', Buffer.alloc(0), MP, /closing boundary/],
  ];
  for (const [name, b, ct, re] of cases) {
    const r = await rawPost(b, { contentType: ct });
    assert.equal(r.status, 400, `${name}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.type, 'error');
    assert.match(r.body.error.message, re, name);
  }
  // only a file part without its close: no file at all is no longer the complaint
  const onlyFields = await rawPost(close, { contentType: MP });
  assert.equal(onlyFields.status, 400);
  assert.match(onlyFields.body.error.message, /file: Field required/);
  // a client that leaves mid-upload leaves nothing behind
  const big = Buffer.concat([part('file', 'a.bin', randomBytes(1 << 20)), close]);
  assert.equal((await rawPost(big, { contentType: MP, cut: 300000 })).status, 'cut');
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(stored(), []);
  assert.deepEqual(pending(), []);
});

test('files: a wrong key is 401 before anything is stored; the SDK types parse', async () => {
  const bad = new Anthropic({ baseURL: srv.baseURL, apiKey: 'wrong', maxRetries: 0 });
  await rejectsStatus(bad.beta.files.upload({ file: await toFile(randomBytes(1024), 'x.bin') }), 401);
  await rejectsStatus(bad.beta.files.list(), 401);
  assert.deepEqual(stored(), []);
  assert.deepEqual(pending(), []);
});

test('files: an upload acknowledged survives kill -9', async () => {
  const bytes = randomBytes(200000);
  const f = await client.beta.files.upload({ file: await toFile(bytes, 'keep.bin') });
  srv.proc.kill('SIGKILL');
  await new Promise((r) => srv.proc.once('exit', r));
  srv = await startServer({ dataDir, env: { AIRLOCK_FILES_MAX_BYTES: String(LIMIT) } });
  client = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
  assert.deepEqual(await client.beta.files.retrieveMetadata(f.id), f);
  assert.ok(Buffer.from(await (await client.beta.files.download(f.id)).arrayBuffer()).equals(bytes));
  await client.beta.files.delete(f.id);
});

test('session resources: add, list with pages, get, update, delete; a sessions token reads only its files', async () => {
  const { env, envKey } = await envWithKey(srv, client, 'files-env');
  const agent = await client.beta.agents.create({ name: 'f', model: 'claude-x' });
  const store = await client.beta.memoryStores.create({ name: 'Notes' });
  const sess = await client.beta.sessions.create({ agent: agent.id, environment_id: env.id,
    resources: [{ type: 'memory_store', memory_store_id: store.id, access: 'read_only' }] });
  const msr = sess.resources[0];
  assert.match(msr.id, /^sesrsc_/);
  assert.equal(msr.mount_path, '/mnt/memory/notes');
  const f1 = await client.beta.files.upload({ file: await toFile(Buffer.from('data one'), 'one.csv', { type: 'text/csv' }) });
  const f2 = await client.beta.files.upload({ file: await toFile(Buffer.from('data two'), 'two.txt') });
  const other = await client.beta.files.upload({ file: await toFile(Buffer.from('not yours'), 'other.txt') });
  const res = client.beta.sessions.resources;

  const r1 = await res.add(sess.id, { type: 'file', file_id: f1.id });
  assert.deepEqual(Object.keys(r1).sort(), ['created_at', 'file_id', 'id', 'mount_path', 'type', 'updated_at']);
  assert.equal(r1.type, 'file');
  assert.equal(r1.mount_path, `/mnt/session/uploads/${f1.id}`);
  const r2 = await res.add(sess.id, { type: 'file', file_id: f2.id, mount_path: '/workspace/data/two.txt' });
  assert.equal(r2.mount_path, '/workspace/data/two.txt');

  for (const [body, status, re] of [
    [{ type: 'file', file_id: f1.id, mount_path: '/workspace/data/two.txt' }, 409, /taken/],
    [{ type: 'file', file_id: f1.id, mount_path: 'relative/x' }, 400, /absolute/],
    [{ type: 'file', file_id: f1.id, mount_path: '/workspace/../etc/passwd' }, 400, /'\.\.'/],
    [{ type: 'file', file_id: f1.id, mount_path: '/mnt/memory/notes/x' }, 400, /memory/],
    [{ type: 'file', file_id: 'file_nosuchfile000000000000000' }, 404, /not found/],
    [{ type: 'file', file_id: 'nope' }, 400, /file_id/],
    [{ type: 'github_repository', url: 'https://github.com/a/b' }, 400, /egress/],
    [{ type: 'memory_store', memory_store_id: store.id }, 400, /created/],
  ])
    await rejectsStatus(res.add(sess.id, body), status, re);
  await rejectsStatus(res.add('sesn_nosuchsession0000000000', { type: 'file', file_id: f1.id }), 404);

  // the session document carries them: its worker reads them from there
  const after = await client.beta.sessions.retrieve(sess.id);
  assert.deepEqual(after.resources.map((x) => x.id), [msr.id, r1.id, r2.id]);

  const page1 = await res.list(sess.id, { limit: 2 });
  assert.equal(page1.data.length, 2);
  assert.ok(page1.next_page);
  assert.deepEqual((await all(res.list(sess.id, { limit: 2 }))).map((x) => x.id), [msr.id, r1.id, r2.id]);
  assert.deepEqual(await res.retrieve(r1.id, { session_id: sess.id }), r1);
  assert.equal((await res.retrieve(msr.id, { session_id: sess.id })).memory_store_id, store.id);
  await rejectsStatus(res.retrieve('sesrsc_nope', { session_id: sess.id }), 404);
  await rejectsStatus(res.update(r1.id, { session_id: sess.id, authorization_token: 'ghp_x' }), 400, /github_repository/);

  // a sessions token: its session's resources, and exactly its session's files
  const token = await sessionsToken(srv, env, envKey, sess.id, 'filetest');
  const tc = new Anthropic({ baseURL: srv.baseURL, authToken: token, apiKey: null, maxRetries: 0 });
  assert.equal((await all(tc.beta.sessions.resources.list(sess.id))).length, 3);
  assert.equal((await tc.beta.files.retrieveMetadata(f1.id)).filename, 'one.csv');
  assert.equal(await (await tc.beta.files.download(f2.id)).text(), 'data two');
  await rejectsStatus(tc.beta.files.retrieveMetadata(other.id), 404);
  await rejectsStatus(tc.beta.files.download(other.id), 404);
  await rejectsStatus(tc.beta.files.list(), 403);
  await rejectsStatus(tc.beta.sessions.resources.add(sess.id, { type: 'file', file_id: other.id }), 403);

  // removing a resource takes the token's access with it
  assert.deepEqual(await res.delete(r2.id, { session_id: sess.id }), { id: r2.id, type: 'session_resource_deleted' });
  await rejectsStatus(res.retrieve(r2.id, { session_id: sess.id }), 404);
  await rejectsStatus(tc.beta.files.download(f2.id), 404);
  await res.delete(msr.id, { session_id: sess.id });
  await rejectsStatus(tc.beta.memoryStores.retrieve(store.id), 404);
  assert.deepEqual((await client.beta.sessions.retrieve(sess.id)).resources.map((x) => x.id), [r1.id]);
  await rejectsStatus(res.delete(r2.id, { session_id: sess.id }), 404);
  // an archived session's resources do not change
  await client.beta.sessions.archive(sess.id);
  await rejectsStatus(res.add(sess.id, { type: 'file', file_id: f2.id }), 400, /archived/);
  for (const f of [f1, f2, other]) await client.beta.files.delete(f.id);
});
