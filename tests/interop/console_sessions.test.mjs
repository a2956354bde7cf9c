// Console sign-in sessions live in the database (docs/server/console.md "Sessions"): a
// browser signed in to one server stays signed in after that server restarts on the same
// data, and, on PostgreSQL (the interop-pg run), on a second replica of the same
// database; a forged cookie, a replaced one and a signed-out one open nothing anywhere;
// the cookie's value is never stored, only its hash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from './lib/server.mjs';

const HDR = 'x-airlock-console';
const onPostgres = !!process.env.AIRLOCK_TEST_PG_PORT;

async function signIn(base, key, headers = {}) {
  const res = await fetch(`${base}/console/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', [HDR]: '1', ...headers },
    body: JSON.stringify({ key }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return { body, cookie: res.headers.get('set-cookie').split(';')[0] };
}

// GET /v1/sessions as the console's script sends it: the status says who the cookie is.
async function v1(base, cookie, csrf) {
  const headers = { cookie };
  if (csrf !== undefined) headers[HDR] = csrf;
  const res = await fetch(`${base}/v1/sessions`, { headers });
  await res.arrayBuffer();
  return res.status;
}

async function whoami(base, cookie) {
  const res = await fetch(`${base}/console/session`, { headers: { cookie, [HDR]: '1' } });
  return { status: res.status, body: await res.json() };
}

async function signOut(base, s) {
  const res = await fetch(`${base}/console/logout`, { method: 'POST', headers: { cookie: s.cookie, [HDR]: s.body.csrf_token } });
  await res.arrayBuffer();
  return res.status;
}

// The console_sessions rows, as text to search (sqlite3 or psql: both in tools/deps.sh).
function storedRows(server) {
  const sql = 'SELECT * FROM console_sessions';
  const [cmd, args] = onPostgres
    ? ['psql', [server.cliEnv.AIRLOCK_DATABASE_URL, '-qAt', '-c', sql]]
    : ['sqlite3', [path.join(server.dataDir, 'airlock.db'), sql]];
  return execFileSync(cmd, args, { encoding: 'utf8', env: server.cliEnv });
}

test('a console session outlives a restart and is shared by replicas of one database', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'airlock-console-db-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const apiKey = `test_${createHash('sha256').update(dir).digest('hex').slice(0, 32)}`;
  const env = { AIRLOCK_API_KEY: apiKey };
  let a = await startServer({ dataDir: dir, env });
  t.after(() => a.stop());

  const s1 = await signIn(a.baseURL, apiKey);
  const s2 = await signIn(a.baseURL, apiKey);
  const gone = await signIn(a.baseURL, apiKey);
  // signing in again from the browser that holds `gone` replaces it (no fixation)
  const replaced = await signIn(a.baseURL, apiKey, { cookie: gone.cookie });
  assert.equal(await v1(a.baseURL, gone.cookie, gone.body.csrf_token), 401);
  // an issued key, to revoke later
  const issued = execFileSync(process.env.AIRLOCK_BIN, ['keys', 'create', '--server'], {
    encoding: 'utf8',
    env: a.cliEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
    .trim()
    .split('\n')
    .at(-1);
  const s3 = await signIn(a.baseURL, issued);
  const out = await signIn(a.baseURL, apiKey);
  assert.equal(await signOut(a.baseURL, out), 200);
  for (const s of [s1, s2, s3, replaced]) assert.equal(await v1(a.baseURL, s.cookie, s.body.csrf_token), 200);

  // only the cookie's hash is stored
  const stored = storedRows(a);
  for (const s of [s1, s2, s3, replaced]) {
    const id = s.cookie.slice(s.cookie.indexOf('=') + 1);
    assert.ok(!stored.includes(id), 'the cookie value is not in the database');
    assert.ok(stored.includes(createHash('sha256').update(id).digest('hex')), 'its hash is');
  }

  // the server restarts on the same data
  await a.stop();
  a = await startServer({ dataDir: dir, env });
  // a second replica on the same database (PostgreSQL only: SQLite is one server's file),
  // with its own data directory (each replica keeps its own audit log file)
  let b = a;
  if (onPostgres) {
    b = await startServer({ env: { ...env, AIRLOCK_DATABASE_URL: a.cliEnv.AIRLOCK_DATABASE_URL } });
    t.after(() => b.stop());
  }
  for (const base of [a.baseURL, b.baseURL]) {
    assert.equal(await v1(base, s1.cookie, s1.body.csrf_token), 200, 'the cookie works with its CSRF token');
    const me = await whoami(base, s1.cookie);
    assert.equal(me.status, 200);
    assert.equal(me.body.csrf_token, s1.body.csrf_token, 'the console script gets the same token back');
    assert.equal(me.body.expires_at, s1.body.expires_at);
    assert.equal(await v1(base, s1.cookie), 403, 'no CSRF token');
    assert.equal(await v1(base, s1.cookie, s2.body.csrf_token), 403, "another session's token");
    assert.equal(await v1(base, 'airlock_console=forged', s1.body.csrf_token), 401, 'a forged cookie');
    const hash = createHash('sha256').update(s1.cookie.split('=')[1]).digest('hex');
    assert.equal(await v1(base, `airlock_console=${hash}`, s1.body.csrf_token), 401, 'the stored hash is no cookie');
    assert.equal(await v1(base, gone.cookie, gone.body.csrf_token), 401, 'a replaced cookie');
    assert.equal(await v1(base, out.cookie, out.body.csrf_token), 401, 'a signed-out cookie');
    assert.equal((await whoami(base, out.cookie)).status, 401);
  }

  // revoking the issued key ends its session on every replica
  assert.equal(await v1(b.baseURL, s3.cookie, s3.body.csrf_token), 200);
  execFileSync(process.env.AIRLOCK_BIN, ['keys', 'revoke', s3.body.key_id], { env: a.cliEnv, stdio: 'ignore' });
  assert.equal(await v1(a.baseURL, s3.cookie, s3.body.csrf_token), 401);
  assert.equal(await v1(b.baseURL, s3.cookie, s3.body.csrf_token), 401);

  // sign-out on one replica ends the session on the other, and after a restart
  assert.equal(await signOut(b.baseURL, s2), 200);
  assert.equal(await v1(a.baseURL, s2.cookie, s2.body.csrf_token), 401);
  assert.equal(await v1(b.baseURL, s2.cookie, s2.body.csrf_token), 401);
  if (b !== a) await b.stop();
  await a.stop();
  a = await startServer({ dataDir: dir, env });
  assert.equal(await v1(a.baseURL, s2.cookie, s2.body.csrf_token), 401);
  assert.equal(await v1(a.baseURL, s1.cookie, s1.body.csrf_token), 200);
  assert.ok(!storedRows(a).includes(createHash('sha256').update(s2.cookie.split('=')[1]).digest('hex')), 'the signed-out row is gone');
});
