// The official SDK, unmodified, against a real `airlock server`: memory stores, memories
// and memory versions, every method (create, list with pages, get, update, delete,
// archive; path prefixes and depth; preconditions; path conflicts; redaction), the
// bounds on paths and content, sessions attaching stores, and what a work item's
// sessions token may do (only its session's stores; read_only refuses writes).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { EnvironmentWorker } from '@anthropic-ai/sdk/lib/environments/worker';
import { startServer } from './lib/server.mjs';
import { startIdp } from './lib/oidc_idp.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { collectEvents, endTurn, textOf, envWithKey, sessionsToken } from './lib/session.mjs';

let srv;
let client;
let dataDir;

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'airlock-mem-'));
  srv = await startServer({ dataDir });
  client = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
});
after(async () => {
  await srv?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const auditRecords = () => readFileSync(path.join(dataDir, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const sha = (s) => createHash('sha256').update(s, 'utf8').digest('hex');
const STORE_KEYS = ['archived_at', 'created_at', 'description', 'id', 'metadata', 'name', 'type', 'updated_at'];
const MEM_KEYS = ['content', 'content_sha256', 'content_size_bytes', 'created_at', 'id', 'memory_store_id',
  'memory_version_id', 'path', 'type', 'updated_at'];
const VER_KEYS = ['content', 'content_sha256', 'content_size_bytes', 'created_at', 'created_by', 'id', 'memory_id',
  'memory_store_id', 'operation', 'path', 'redacted_at', 'redacted_by', 'type'];

async function rejects(promise, cls, re, check) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message}`);
    if (re) assert.match(err.message, re);
    if (check) check(err);
    return true;
  });
}

async function all(pagePromise) {
  const out = [];
  for await (const x of pagePromise) out.push(x);
  return out;
}

test('memory stores: create, retrieve, update, list with pages, archive, delete', async () => {
  const s = await client.beta.memoryStores.create({ name: 'Team notes', description: 'what we learned', metadata: { team: 'a' } });
  assert.deepEqual(Object.keys(s).sort(), STORE_KEYS);
  assert.equal(s.type, 'memory_store');
  assert.match(s.id, /^memstore_[A-Za-z0-9]{24}$/);
  assert.equal(s.archived_at, null);
  assert.deepEqual(await client.beta.memoryStores.retrieve(s.id), s);
  const bare = await client.beta.memoryStores.create({ name: 'bare' });
  assert.equal(bare.description, '');
  assert.deepEqual(bare.metadata, {});

  const u = await client.beta.memoryStores.update(s.id, { name: 'Team notes 2', metadata: { team: null, x: 'y' } });
  assert.equal(u.name, 'Team notes 2');
  assert.deepEqual(u.metadata, { x: 'y' });
  assert.equal(u.description, 'what we learned');
  assert.deepEqual(await client.beta.memoryStores.update(s.id, { name: null }), u);

  await rejects(client.beta.memoryStores.create({}), Anthropic.BadRequestError, /name: Field required/);
  await rejects(client.beta.memoryStores.create({ name: '' }), Anthropic.BadRequestError, /name: must be 1 to 255/);
  await rejects(client.beta.memoryStores.create({ name: 'x', nope: 1 }), Anthropic.BadRequestError, /nope/);
  await rejects(client.beta.memoryStores.retrieve('memstore_nope'), Anthropic.NotFoundError, /not found/);

  for (let i = 0; i < 5; i++) await client.beta.memoryStores.create({ name: `page ${i}` });
  const page = await client.beta.memoryStores.list({ limit: 2 });
  assert.equal(page.data.length, 2);
  assert.ok(page.hasNextPage());
  const every = await all(client.beta.memoryStores.list({ limit: 2 }));
  assert.equal(every.length, 7);
  assert.equal(new Set(every.map((x) => x.id)).size, 7);

  const a = await client.beta.memoryStores.archive(bare.id);
  assert.notEqual(a.archived_at, null);
  assert.ok(!(await all(client.beta.memoryStores.list())).some((x) => x.id === bare.id));
  assert.ok((await all(client.beta.memoryStores.list({ include_archived: true }))).some((x) => x.id === bare.id));
  await rejects(client.beta.memoryStores.update(bare.id, { name: 'z' }), Anthropic.BadRequestError, /archived/);
  await rejects(client.beta.memoryStores.memories.create(bare.id, { path: '/a', content: 'x' }),
    Anthropic.BadRequestError, /archived/);

  const d = await client.beta.memoryStores.delete(s.id);
  assert.deepEqual(d, { id: s.id, type: 'memory_store_deleted' });
  await rejects(client.beta.memoryStores.retrieve(s.id), Anthropic.NotFoundError);
  assert.ok(auditRecords().some((r) => r.action === 'memory_store.delete' && r.resources.memory_store_id === s.id));
});

test('memories: create, retrieve, list with prefixes, depth and pages, update, delete', async () => {
  const st = await client.beta.memoryStores.create({ name: 'mem' });
  const mems = client.beta.memoryStores.memories;
  const m = await mems.create(st.id, { path: '/projects/foo/notes.md', content: 'hello' });
  assert.deepEqual(Object.keys(m).sort(), MEM_KEYS);
  assert.equal(m.type, 'memory');
  assert.match(m.id, /^mem_/);
  assert.match(m.memory_version_id, /^memver_/);
  assert.equal(m.content, null); // create answers view=basic by default
  assert.equal(m.content_sha256, sha('hello'));
  assert.equal(m.content_size_bytes, 5);
  const full = await mems.create(st.id, { path: '/projects/bar.md', content: 'é' }, { query: { view: 'full' } });
  assert.equal(full.content, 'é');
  assert.equal(full.content_size_bytes, 2);
  const got = await mems.retrieve(m.id, { memory_store_id: st.id });
  assert.equal(got.content, 'hello'); // retrieve defaults to full
  assert.equal((await mems.retrieve(m.id, { memory_store_id: st.id, view: 'basic' })).content, null);
  await mems.create(st.id, { path: '/projects/foo/deep/a.md', content: '' });
  await mems.create(st.id, { path: '/projects-archive/x.md', content: 'x' });
  await mems.create(st.id, { path: '/top.md', content: 't' });

  const everything = await all(mems.list(st.id, { limit: 2 }));
  assert.deepEqual(everything.map((x) => x.path), ['/projects-archive/x.md', '/projects/bar.md',
    '/projects/foo/deep/a.md', '/projects/foo/notes.md', '/top.md']);
  assert.ok(everything.every((x) => x.content === null));
  const under = await all(mems.list(st.id, { path_prefix: '/projects/' }));
  assert.deepEqual(under.map((x) => x.path), ['/projects/bar.md', '/projects/foo/deep/a.md', '/projects/foo/notes.md']);
  const top = await all(mems.list(st.id, { depth: 1, limit: 1 }));
  assert.deepEqual(top.map((x) => `${x.type}:${x.path}`),
    ['memory_prefix:/projects-archive/', 'memory_prefix:/projects/', 'memory:/top.md']);
  const one = await all(mems.list(st.id, { path_prefix: '/projects/', depth: 1 }));
  assert.deepEqual(one.map((x) => `${x.type}:${x.path}`), ['memory:/projects/bar.md', 'memory_prefix:/projects/foo/']);
  const fullList = await mems.list(st.id, { view: 'full', limit: 500 });
  assert.equal(fullList.data.length, 5);
  assert.equal(fullList.data.find((x) => x.path === '/top.md').content, 't');
  await rejects(mems.list(st.id, { path_prefix: '/projects' }), Anthropic.BadRequestError, /must end with '\/'/);
  await rejects(mems.list(st.id, { page: 'bm90IGEgY3Vyc29y' }), Anthropic.BadRequestError, /page/);

  // update: content with the right hash, a rename, both recorded as versions
  const u1 = await mems.update(m.id, { memory_store_id: st.id, content: 'hello 2',
    precondition: { type: 'content_sha256', content_sha256: sha('hello') } });
  assert.equal(u1.content_sha256, sha('hello 2'));
  assert.notEqual(u1.memory_version_id, m.memory_version_id);
  await rejects(mems.update(m.id, { memory_store_id: st.id, content: 'lost',
    precondition: { type: 'content_sha256', content_sha256: sha('hello') } }),
  Anthropic.ConflictError, /expected content_sha256/, (err) => {
    assert.equal(err.status, 409);
    assert.equal(err.error.error.type, 'memory_precondition_failed_error');
  });
  assert.equal((await mems.retrieve(m.id, { memory_store_id: st.id })).content, 'hello 2'); // nothing lost
  // the requested state already holds: success without a new version, whatever the hash
  const same = await mems.update(m.id, { memory_store_id: st.id, content: 'hello 2',
    precondition: { type: 'content_sha256', content_sha256: sha('stale') } });
  assert.equal(same.memory_version_id, u1.memory_version_id);
  const moved = await mems.update(m.id, { memory_store_id: st.id, path: '/projects/foo/renamed.md' }, { query: { view: 'full' } });
  assert.equal(moved.id, m.id);
  assert.equal(moved.path, '/projects/foo/renamed.md');
  assert.equal(moved.content, 'hello 2');

  // path conflicts: the same path, an ancestor (a memory at /top.md blocks /top.md/x),
  // a descendant (memories below /projects/foo block /projects/foo itself)
  for (const [p, blocker] of [['/top.md', '/top.md'], ['/top.md/x', '/top.md'], ['/projects/foo', null]]) {
    await rejects(mems.create(st.id, { path: p, content: 'c' }), Anthropic.ConflictError, /path/, (err) => {
      assert.equal(err.error.error.type, 'memory_path_conflict_error');
      assert.match(err.error.error.conflicting_memory_id, /^mem_/);
      if (blocker) assert.equal(err.error.error.conflicting_path, blocker);
      else assert.match(err.error.error.conflicting_path, /^\/projects\/foo\//);
    });
  }
  await rejects(mems.update(m.id, { memory_store_id: st.id, path: '/top.md' }), Anthropic.ConflictError, /taken/);
  // a memory may move below its own old path (it no longer blocks itself)
  const sub = await mems.update(m.id, { memory_store_id: st.id, path: '/projects/foo/renamed.md/inner' });
  assert.equal(sub.path, '/projects/foo/renamed.md/inner');

  // delete with a precondition
  await rejects(mems.delete(m.id, { memory_store_id: st.id, expected_content_sha256: sha('nope') }),
    Anthropic.ConflictError, /content_sha256/);
  await rejects(mems.delete(m.id, { memory_store_id: st.id, expected_content_sha256: 'ABC' }),
    Anthropic.BadRequestError, /64 lower-case/);
  const del = await mems.delete(m.id, { memory_store_id: st.id, expected_content_sha256: sha('hello 2') });
  assert.deepEqual(del, { id: m.id, type: 'memory_deleted' });
  await rejects(mems.retrieve(m.id, { memory_store_id: st.id }), Anthropic.NotFoundError);
  await rejects(mems.delete(m.id, { memory_store_id: st.id }), Anthropic.NotFoundError);
  // another store's id does not reach this memory
  const other = await client.beta.memoryStores.create({ name: 'other' });
  await rejects(mems.retrieve(full.id, { memory_store_id: other.id }), Anthropic.NotFoundError);
});

test('memories: bad paths and content are 400s and store nothing', async () => {
  const st = await client.beta.memoryStores.create({ name: 'bad' });
  const mems = client.beta.memoryStores.memories;
  const bad = [
    ['no-slash', /start with/], ['/a/../b', /'\.' and '\.\.'/], ['/a/./b', /'\.' and '\.\.'/], ['/a//b', /empty segment/],
    ['/a/', /empty segment/], ['/a\u0000b', /NUL|control/], ['/a\u0007b', /control/], ['/a\u202eb', /format/],
    ['/a\u2028b', /format|control/], ['/' + Array.from({ length: 21 }, () => 's').join('/'), /at most 20 segments/],
    ['/' + 'x/'.repeat(10000) + 'y', /at most 1024 bytes/], ['/' + 'x'.repeat(1024), /at most 1024 bytes/],
    ['/', /empty segment/],
  ];
  for (const [p, re] of bad) await rejects(mems.create(st.id, { path: p, content: 'c' }), Anthropic.BadRequestError, re);
  await rejects(mems.create(st.id, { path: '/big', content: 'x'.repeat(102401) }), Anthropic.BadRequestError, /at most 102400 bytes/);
  await rejects(mems.create(st.id, { content: 'x' }), Anthropic.BadRequestError, /path: Field required/);
  await rejects(mems.create(st.id, { path: '/x' }), Anthropic.BadRequestError, /content: Field required/);
  assert.equal((await all(mems.list(st.id))).length, 0);
  assert.equal((await all(client.beta.memoryStores.memoryVersions.list(st.id))).length, 0);
  // the bounds themselves are accepted
  const okPath = '/' + Array.from({ length: 20 }, () => 's').join('/');
  await mems.create(st.id, { path: okPath, content: 'x'.repeat(102400) });
  await mems.create(st.id, { path: '/' + 'y'.repeat(1023), content: '' });
  await rejects(mems.create('memstore_nope', { path: '/x', content: '' }), Anthropic.NotFoundError);
});

test('memory versions: list, filters, retrieve, redact keeps the row and drops the content', async () => {
  const st = await client.beta.memoryStores.create({ name: 'ver' });
  const mems = client.beta.memoryStores.memories;
  const vers = client.beta.memoryStores.memoryVersions;
  const m = await mems.create(st.id, { path: '/v.md', content: 'one' });
  await mems.update(m.id, { memory_store_id: st.id, content: 'two' });
  const m2 = await mems.create(st.id, { path: '/w.md', content: 'w' });
  await mems.delete(m.id, { memory_store_id: st.id });

  const list = await all(vers.list(st.id, { memory_id: m.id, limit: 1 }));
  assert.deepEqual(list.map((v) => v.operation), ['deleted', 'modified', 'created']); // newest first
  for (const v of list) {
    assert.deepEqual(Object.keys(v).sort(), VER_KEYS);
    assert.equal(v.type, 'memory_version');
    assert.equal(v.memory_id, m.id);
    assert.equal(v.content, null); // list is basic by default
    assert.deepEqual(v.created_by.type, 'api_actor');
  }
  const [deleted, modified, created] = list;
  assert.equal(deleted.content_sha256, null);
  assert.equal(deleted.path, '/v.md');
  assert.equal(modified.content_sha256, sha('two'));
  assert.equal(created.content_size_bytes, 3);
  assert.equal((await all(vers.list(st.id))).length, 4);
  assert.deepEqual((await all(vers.list(st.id, { operation: 'created' }))).map((v) => v.memory_id).sort(), [m.id, m2.id].sort());
  assert.equal((await all(vers.list(st.id, { session_id: 'sesn_none' }))).length, 0);
  assert.equal((await vers.list(st.id, { view: 'full', memory_id: m.id })).data[2].content, 'one');
  await rejects(vers.list(st.id, { operation: 'renamed' }), Anthropic.BadRequestError, /operation/);

  const got = await vers.retrieve(created.id, { memory_store_id: st.id });
  assert.equal(got.content, 'one');
  const red = await vers.redact(created.id, { memory_store_id: st.id });
  assert.equal(red.id, created.id);
  assert.notEqual(red.redacted_at, null);
  assert.equal(red.redacted_by.type, 'api_actor');
  for (const k of ['content', 'path', 'content_sha256', 'content_size_bytes']) assert.equal(red[k], null, k);
  const rec = auditRecords().find((r) => r.action === 'memory_version.redact' && r.resources.memory_version_id === created.id);
  assert.ok(rec, 'no audit record of the redaction');
  assert.deepEqual([rec.resources.memory_store_id, rec.resources.memory_id], [st.id, m.id]);
  const again = await vers.retrieve(created.id, { memory_store_id: st.id });
  assert.equal(again.content, null);
  assert.equal(again.operation, 'created');
  assert.equal((await all(vers.list(st.id, { memory_id: m.id }))).length, 3); // the row stays
  // the version that holds a live memory's content cannot be redacted
  const cur = await mems.retrieve(m2.id, { memory_store_id: st.id });
  await rejects(vers.redact(cur.memory_version_id, { memory_store_id: st.id }), Anthropic.ConflictError, /current content/,
    (err) => assert.equal(err.error.error.type, 'conflict_error'));
  await rejects(vers.retrieve('memver_nope', { memory_store_id: st.id }), Anthropic.NotFoundError);
  // the store's content is gone from the database file once redacted and deleted
  assert.equal((await vers.retrieve(created.id, { memory_store_id: st.id, view: 'full' })).content, null);
});

test('concurrent writers of one memory: exactly one wins each precondition, nothing is lost', async () => {
  const st = await client.beta.memoryStores.create({ name: 'race' });
  const mems = client.beta.memoryStores.memories;
  const m = await mems.create(st.id, { path: '/race.md', content: 'v0' });
  let cur = 'v0';
  for (let round = 1; round <= 5; round++) {
    const tries = Array.from({ length: 8 }, (_, i) => mems.update(m.id, { memory_store_id: st.id,
      content: `r${round}-w${i}`, precondition: { type: 'content_sha256', content_sha256: sha(cur) } })
      .then((x) => ({ ok: x }), (err) => ({ err })));
    const out = await Promise.all(tries);
    const won = out.filter((o) => o.ok);
    assert.equal(won.length, 1, `round ${round}: ${won.length} winners`);
    for (const o of out.filter((x) => x.err)) {
      assert.equal(o.err.status, 409);
      assert.equal(o.err.error.error.type, 'memory_precondition_failed_error');
    }
    const got = await mems.retrieve(m.id, { memory_store_id: st.id });
    assert.equal(got.content_sha256, won[0].ok.content_sha256); // the winner's write is what is stored
    cur = got.content;
  }
  // one version per accepted write, none for refused ones
  assert.equal((await all(client.beta.memoryStores.memoryVersions.list(st.id, { memory_id: m.id }))).length, 6);
  // racing creates of one path: one memory, the others 409 path conflicts
  const creates = await Promise.all(Array.from({ length: 8 }, (_, i) =>
    mems.create(st.id, { path: '/same.md', content: `c${i}` }).then((x) => ({ ok: x }), (err) => ({ err }))));
  assert.equal(creates.filter((o) => o.ok).length, 1);
  assert.ok(creates.filter((o) => o.err).every((o) => o.err.error.error.type === 'memory_path_conflict_error'));
});

test('sessions attach stores; a sessions token uses exactly its session\'s stores', async () => {
  const { env, envKey } = await envWithKey(srv, client, 'mem-env');
  const agent = await client.beta.agents.create({ name: 'm', model: 'claude-x' });
  const rw = await client.beta.memoryStores.create({ name: 'Shared Notes!', description: 'd' });
  const ro = await client.beta.memoryStores.create({ name: 'reference' });
  const foreign = await client.beta.memoryStores.create({ name: 'foreign' });
  const archived = await client.beta.memoryStores.create({ name: 'old' });
  await client.beta.memoryStores.archive(archived.id);
  const fm = await client.beta.memoryStores.memories.create(foreign.id, { path: '/secret.md', content: 's' });
  const rom = await client.beta.memoryStores.memories.create(ro.id, { path: '/ref.md', content: 'r' });

  await rejects(client.beta.sessions.create({ agent: agent.id, environment_id: env.id,
    resources: [{ type: 'memory_store', memory_store_id: archived.id }] }), Anthropic.BadRequestError, /archived/);
  await rejects(client.beta.sessions.create({ agent: agent.id, environment_id: env.id,
    resources: [{ type: 'memory_store', memory_store_id: 'memstore_nope' }] }), Anthropic.NotFoundError);
  await rejects(client.beta.sessions.create({ agent: agent.id, environment_id: env.id,
    resources: [{ type: 'memory_store', memory_store_id: rw.id, access: 'write_only' }] }), Anthropic.BadRequestError, /access/);

  const sess = await client.beta.sessions.create({ agent: agent.id, environment_id: env.id, resources: [
    { type: 'memory_store', memory_store_id: rw.id, instructions: 'keep notes' },
    { type: 'memory_store', memory_store_id: ro.id, access: 'read_only' },
  ] });
  assert.equal(sess.resources.length, 2);
  assert.equal(sess.resources[0].mount_path, '/mnt/memory/shared-notes');
  assert.equal(sess.resources[0].access, 'read_write');
  assert.equal(sess.resources[0].name, 'Shared Notes!');
  assert.equal(sess.resources[1].access, 'read_only');
  const listed = await client.beta.sessions.list({ memory_store_id: ro.id });
  assert.deepEqual(listed.data.map((x) => x.id), [sess.id]);

  const token = await sessionsToken(srv, env, envKey, sess.id, 'memtest');
  const tc = new Anthropic({ baseURL: srv.baseURL, authToken: token, apiKey: null, maxRetries: 0 });
  // its read_write store: read and write, versions name the session
  assert.equal((await tc.beta.memoryStores.retrieve(rw.id)).id, rw.id);
  const w = await tc.beta.memoryStores.memories.create(rw.id, { path: '/from-agent.md', content: 'a' });
  await tc.beta.memoryStores.memories.update(w.id, { memory_store_id: rw.id, content: 'b' });
  const vs = await all(tc.beta.memoryStores.memoryVersions.list(rw.id, { session_id: sess.id }));
  assert.equal(vs.length, 2);
  assert.deepEqual(vs[0].created_by, { type: 'session_actor', session_id: sess.id });
  // its read_only store: reads, and 403 on every write
  assert.equal((await tc.beta.memoryStores.memories.retrieve(rom.id, { memory_store_id: ro.id })).content, 'r');
  await rejects(tc.beta.memoryStores.memories.create(ro.id, { path: '/x', content: 'x' }), Anthropic.PermissionDeniedError, /read_only/);
  await rejects(tc.beta.memoryStores.memories.update(rom.id, { memory_store_id: ro.id, content: 'x' }), Anthropic.PermissionDeniedError);
  await rejects(tc.beta.memoryStores.memories.delete(rom.id, { memory_store_id: ro.id }), Anthropic.PermissionDeniedError);
  // another store: 404, as if it did not exist
  await rejects(tc.beta.memoryStores.retrieve(foreign.id), Anthropic.NotFoundError);
  await rejects(tc.beta.memoryStores.memories.retrieve(fm.id, { memory_store_id: foreign.id }), Anthropic.NotFoundError);
  await rejects(tc.beta.memoryStores.memories.list(foreign.id), Anthropic.NotFoundError);
  await rejects(tc.beta.memoryStores.memoryVersions.list(foreign.id), Anthropic.NotFoundError);
  // store management and redaction are not a session's
  for (const call of [() => tc.beta.memoryStores.list(), () => tc.beta.memoryStores.create({ name: 'n' }),
    () => tc.beta.memoryStores.update(rw.id, { name: 'n' }), () => tc.beta.memoryStores.delete(rw.id),
    () => tc.beta.memoryStores.archive(rw.id),
    () => tc.beta.memoryStores.memoryVersions.redact(vs[1].id, { memory_store_id: rw.id })]) {
    await rejects(call(), Anthropic.PermissionDeniedError, /cannot be used/);
  }
  // the environment key reaches no memory at all
  const ec = new Anthropic({ baseURL: srv.baseURL, authToken: envKey, apiKey: null, maxRetries: 0 });
  await rejects(ec.beta.memoryStores.memories.list(rw.id), Anthropic.PermissionDeniedError, /cannot be used/);
  assert.equal((await client.beta.memoryStores.memories.retrieve(fm.id, { memory_store_id: foreign.id })).content, 's');
});

test('memory writes survive kill -9 right after their answer (durable before acknowledged)', async () => {
  const st = await client.beta.memoryStores.create({ name: 'durable' });
  const m = await client.beta.memoryStores.memories.create(st.id, { path: '/d.md', content: 'kept' });
  const u = await client.beta.memoryStores.memories.update(m.id, { memory_store_id: st.id, content: 'kept 2' });
  const exited = new Promise((resolve) => srv.proc.once('exit', resolve));
  srv.proc.kill('SIGKILL');
  await exited;
  srv = await startServer({ dataDir, env: { AIRLOCK_API_KEY: srv.apiKey } });
  client = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
  const got = await client.beta.memoryStores.memories.retrieve(m.id, { memory_store_id: st.id });
  assert.equal(got.content, 'kept 2');
  assert.equal(got.memory_version_id, u.memory_version_id);
});

test('roles: developers manage stores; users read only the stores their own sessions mount', async () => {
  const idp = await startIdp({ users: { erin: { groups: ['engineers'] }, bob: { groups: ['staff'] }, alice: { groups: ['staff'] } } });
  const dir = mkdtempSync(path.join(tmpdir(), 'airlock-mem-roles-'));
  const policyFile = path.join(dir, 'policy.yaml');
  writeFileSync(policyFile, 'default: deny\nroles:\n  developer: [engineers]\n');
  const s2 = await startServer({ env: { AIRLOCK_OIDC_ISSUER: idp.issuer, AIRLOCK_OIDC_AUDIENCE: 'airlock', AIRLOCK_POLICY_FILE: policyFile } });
  try {
    for (let i = 0; i < 100 && !/identity provider keys loaded/.test(s2.log()); i++) await new Promise((r) => setTimeout(r, 50));
    const as = async (name) => new Anthropic({ baseURL: s2.baseURL, apiKey: null, authToken: await idp.token(name), maxRetries: 0 });
    const admin = new Anthropic({ baseURL: s2.baseURL, apiKey: s2.apiKey, maxRetries: 0 });
    const erin = await as('erin');
    const bob = await as('bob');
    const alice = await as('alice');
    const st = await erin.beta.memoryStores.create({ name: 'runbooks' });
    const m = await erin.beta.memoryStores.memories.create(st.id, { path: '/r.md', content: 'v1' });
    await erin.beta.memoryStores.memories.update(m.id, { memory_store_id: st.id, content: 'v2' });
    const vs = await all(erin.beta.memoryStores.memoryVersions.list(st.id));
    assert.deepEqual(vs[0].created_by, { type: 'user_actor', user_id: 'erin' });
    const red = await erin.beta.memoryStores.memoryVersions.redact(vs[1].id, { memory_store_id: st.id });
    assert.deepEqual(red.redacted_by, { type: 'user_actor', user_id: 'erin' });

    // users manage no store and see none that their sessions do not mount
    await rejects(bob.beta.memoryStores.create({ name: 'x' }), Anthropic.PermissionDeniedError);
    await rejects(bob.beta.memoryStores.list(), Anthropic.PermissionDeniedError);
    await rejects(bob.beta.memoryStores.retrieve(st.id), Anthropic.NotFoundError);
    const agent = await admin.beta.agents.create({ name: 'a', model: 'claude-x' });
    const env = await admin.beta.environments.create({ name: 'e', config: { type: 'self_hosted' } });
    await bob.beta.sessions.create({ agent: agent.id, environment_id: env.id,
      resources: [{ type: 'memory_store', memory_store_id: st.id, access: 'read_only' }] });
    assert.equal((await bob.beta.memoryStores.retrieve(st.id)).id, st.id);
    assert.equal((await bob.beta.memoryStores.memories.retrieve(m.id, { memory_store_id: st.id })).content, 'v2');
    assert.equal((await all(bob.beta.memoryStores.memories.list(st.id))).length, 1);
    assert.equal((await all(bob.beta.memoryStores.memoryVersions.list(st.id))).length, 2);
    await rejects(bob.beta.memoryStores.memories.create(st.id, { path: '/b', content: 'b' }), Anthropic.PermissionDeniedError);
    await rejects(bob.beta.memoryStores.memories.update(m.id, { memory_store_id: st.id, content: 'b' }), Anthropic.PermissionDeniedError);
    await rejects(bob.beta.memoryStores.memoryVersions.redact(vs[0].id, { memory_store_id: st.id }), Anthropic.PermissionDeniedError);
    await rejects(bob.beta.memoryStores.delete(st.id), Anthropic.PermissionDeniedError);
    // another user's session does not open it to alice
    await rejects(alice.beta.memoryStores.retrieve(st.id), Anthropic.NotFoundError);
    await rejects(alice.beta.memoryStores.memories.list(st.id), Anthropic.NotFoundError);
  } finally {
    await s2.stop();
    await idp.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

// The SDK's EnvironmentWorker (unmodified) mounts the session's stores through this API
// with the item's sessions token, and writes the agent's changes back with its
// content_sha256 preconditions: what the agent reads is the store's, what it writes lands
// as a version by the session, and a read_only store is never written back.
test('the SDK EnvironmentWorker syncs memory stores through airlock', async (t) => {
  const tag = Math.random().toString(36).slice(2, 8);
  const rwMount = `/mnt/memory/sync-rw-${tag}`;
  const roMount = `/mnt/memory/sync-ro-${tag}`;
  const model = await startMockModel([
    { match: 'go-memory', content: [{ type: 'tool_use', name: 'read', input: { file_path: `${rwMount}/notes.md` } }] },
    { match: 'hello from the store', content: [{ type: 'tool_use', name: 'write', input: { file_path: `${rwMount}/learned/today.md`, content: 'learned\n' } }] },
    { match: 'today.md', content: [{ type: 'tool_use', name: 'edit', input: { file_path: `${rwMount}/notes.md`, old_string: 'hello', new_string: 'goodbye' } }] },
    { content: [{ type: 'text', text: 'done' }] },
  ]);
  const s3 = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url } });
  const hadMnt = existsSync('/mnt/memory');
  const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-memsync-')));
  const abort = new AbortController();
  t.after(async () => {
    abort.abort();
    await s3.stop();
    await model.stop();
    rmSync(workdir, { recursive: true, force: true });
    rmSync(rwMount, { recursive: true, force: true });
    rmSync(roMount, { recursive: true, force: true });
    if (!hadMnt) rmSync('/mnt/memory', { recursive: true, force: true });
  });
  const c3 = new Anthropic({ baseURL: s3.baseURL, apiKey: s3.apiKey, maxRetries: 0 });
  const env = await c3.beta.environments.create({ name: 'memsync', config: { type: 'self_hosted' } });
  const agent = await c3.beta.agents.create({ name: 'memsync', model: 'claude-x', tools: [
    { type: 'agent_toolset_20260401', default_config: { permission_policy: { type: 'always_allow' } } }] });
  const kr = await fetch(`${s3.baseURL}/v1/environments/${env.id}/keys`, {
    method: 'POST', headers: { 'x-api-key': s3.apiKey, 'content-type': 'application/json' }, body: '{"name":"k"}',
  });
  const envKey = (await kr.json()).key;
  const rw = await c3.beta.memoryStores.create({ name: `sync rw ${tag}` });
  const ro = await c3.beta.memoryStores.create({ name: `sync ro ${tag}` });
  const notes = await c3.beta.memoryStores.memories.create(rw.id, { path: '/notes.md', content: 'hello from the store\n' });
  await c3.beta.memoryStores.memories.create(ro.id, { path: '/ref.md', content: 'reference\n' });
  const session = await c3.beta.sessions.create({ agent: agent.id, environment_id: env.id, resources: [
    { type: 'memory_store', memory_store_id: rw.id },
    { type: 'memory_store', memory_store_id: ro.id, access: 'read_only' },
  ] });
  assert.equal(session.resources[0].mount_path, rwMount);

  const worker = new EnvironmentWorker({
    client: new Anthropic({ baseURL: s3.baseURL, apiKey: 'unused-by-worker' }),
    environmentId: env.id, environmentKey: envKey, workdir, maxIdleMs: 1500,
  });
  const running = worker.run(abort.signal).catch((e) => {
    if (!abort.signal.aborted) throw e;
  });
  const { done } = await collectEvents(c3, session.id, endTurn, { timeoutMs: 60000 });
  await c3.beta.sessions.events.send(session.id, { events: [{ type: 'user.message', content: [{ type: 'text', text: 'go-memory' }] }] });
  const events = await done;
  const results = events.filter((e) => e.type === 'user.tool_result');
  assert.equal(results.length, 3);
  for (const r of results) assert.equal(r.is_error, false, textOf(r.content));
  assert.match(textOf(results[0].content), /hello from the store/);

  // the final flush runs when the item ends (idle): wait for the writes to land
  const mems = c3.beta.memoryStores.memories;
  let listed = [];
  for (let i = 0; i < 200; i++) {
    listed = await all(mems.list(rw.id, { view: 'full', limit: 20 }));
    const today = listed.find((m) => m.path === '/learned/today.md');
    const n = listed.find((m) => m.path === '/notes.md');
    if (today && n?.content.startsWith('goodbye')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(listed.find((m) => m.path === '/learned/today.md')?.content, 'learned\n');
  const n = listed.find((m) => m.path === '/notes.md');
  assert.equal(n.id, notes.id); // updated in place, under its precondition
  assert.equal(n.content, 'goodbye from the store\n');
  const vs = await all(c3.beta.memoryStores.memoryVersions.list(rw.id, { session_id: session.id }));
  assert.deepEqual(vs.map((v) => v.operation).sort(), ['created', 'modified']);
  assert.ok(vs.every((v) => v.created_by.type === 'session_actor' && v.created_by.session_id === session.id));
  // the read_only store is untouched
  assert.deepEqual((await all(mems.list(ro.id))).map((m) => m.path), ['/ref.md']);
  abort.abort();
  await running;
});
