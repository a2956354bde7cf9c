// The web console (docs/server/console.md): its pages' security headers, sign-in with a
// server API key into a cookie session, the cookie + CSRF header on /v1, and, with
// Debian's headless Chromium driven by puppeteer-core, a person watching a session live
// and approving and denying `always_ask` tool calls (airlock mock-model plays the model).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { startServer } from './lib/server.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { makeEdgeCert } from './lib/edge_cert.mjs';

const CHROMIUM = process.env.AIRLOCK_CHROMIUM ?? '/usr/bin/chromium';
const HDR = 'x-airlock-console';

async function signIn(base, key, headers = { [HDR]: '1' }) {
  const res = await fetch(`${base}/console/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ key }),
  });
  const body = await res.json();
  const setCookie = res.headers.get('set-cookie');
  const cookie = setCookie ? setCookie.split(';')[0] : null;
  return { res, body, setCookie, cookie };
}

// A TCP relay in front of the server whose connections the test can cut, as a flaky
// network would (the browser's offline mode does not end a response in progress).
async function startRelay(port) {
  const pairs = new Set();
  let down = false;
  const srv = net.createServer((c) => {
    if (down) return c.destroy();
    const u = net.connect(port, '127.0.0.1');
    const pair = { c, u };
    pairs.add(pair);
    const end = () => {
      c.destroy();
      u.destroy();
      pairs.delete(pair);
    };
    for (const s of [c, u]) s.on('error', end).on('close', end);
    c.pipe(u);
    u.pipe(c);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${srv.address().port}`,
    cut() {
      down = true;
      for (const p of pairs) p.c.destroy();
    },
    restore() {
      down = false;
    },
    close: () => new Promise((r) => srv.close(r)),
  };
}

const v1 = (base, p, cookie, csrf, init = {}) =>
  fetch(`${base}/v1${p}`, {
    ...init,
    headers: { cookie, ...(csrf === undefined ? {} : { [HDR]: csrf }), ...(init.headers ?? {}) },
  });

test('console pages: built-in assets, content types and strict security headers', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const page = await fetch(`${server.baseURL}/console/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  const csp = page.headers.get('content-security-policy');
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self'(;|$)/, 'no inline script, no eval');
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(page.headers.get('x-frame-options'), 'DENY');
  const html = await page.text();
  assert.match(html, /<script type="module" src="app.js"><\/script>/);
  assert.doesNotMatch(html, /https?:\/\//, 'nothing loaded from elsewhere');
  const js = await fetch(`${server.baseURL}/console/session.js`);
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  assert.match(js.headers.get('content-security-policy'), /default-src 'self'/);
  const css = await fetch(`${server.baseURL}/console/style.css`);
  assert.match(css.headers.get('content-type'), /^text\/css/);
  assert.equal((await fetch(`${server.baseURL}/console/nope.js`)).status, 404);
  const bare = await fetch(`${server.baseURL}/console`, { redirect: 'manual' });
  assert.equal(bare.status, 301);
  assert.equal(bare.headers.get('location'), '/console/');
});

test('console sign-in: the key checked as the API does, cookie session, CSRF header on /v1, revocation, sign-out', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const base = server.baseURL;

  // refused: a wrong key, no console header, another site's origin, an environment key
  const wrong = await signIn(base, 'alk_srv_not-a-key');
  assert.equal(wrong.res.status, 401);
  assert.equal(wrong.setCookie, null);
  assert.equal((await signIn(base, server.apiKey, {})).res.status, 403);
  assert.equal((await signIn(base, server.apiKey, { [HDR]: '1', origin: 'http://evil.example' })).res.status, 403);
  const client = new Anthropic({ baseURL: base, apiKey: server.apiKey, maxRetries: 0 });
  const env = await client.beta.environments.create({ name: 'e', config: { type: 'self_hosted' } });
  const ek = await (
    await fetch(`${base}/v1/environments/${env.id}/keys`, { method: 'POST', headers: { 'x-api-key': server.apiKey } })
  ).json();
  const envSignIn = await signIn(base, ek.key);
  assert.equal(envSignIn.res.status, 401);
  assert.match(envSignIn.body.error.message, /only a server API key/);

  // signed in: the cookie is HttpOnly, SameSite=Strict, no Secure on plain loopback
  const a = await signIn(base, server.apiKey);
  assert.equal(a.res.status, 200);
  assert.match(a.setCookie, /^airlock_console=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Strict$/);
  assert.equal(a.body.key_id, 'env:AIRLOCK_API_KEY');
  assert.ok(a.body.csrf_token.length >= 43);
  assert.ok(!JSON.stringify(a.body).includes(server.apiKey), 'the key is not echoed');

  // /v1 with the cookie: only with the session's CSRF token in the header
  const noHeader = await v1(base, '/sessions', a.cookie);
  assert.equal(noHeader.status, 403);
  assert.match((await noHeader.json()).error.message, /CSRF/);
  assert.equal((await v1(base, '/sessions', a.cookie, '1')).status, 403);
  const create = await v1(base, '/environments', a.cookie, undefined, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'csrf', config: { type: 'self_hosted' } }),
  });
  assert.equal(create.status, 403, 'a cross-site form post with the cookie acts on nothing');
  const ok = await v1(base, '/sessions', a.cookie, a.body.csrf_token);
  assert.equal(ok.status, 200);
  assert.deepEqual((await ok.json()).data, []);
  // the token of one session does not open another
  const b = await signIn(base, server.apiKey);
  assert.notEqual(b.cookie, a.cookie);
  assert.equal((await v1(base, '/sessions', b.cookie, a.body.csrf_token)).status, 403);
  assert.equal((await v1(base, '/sessions', 'airlock_console=forged', a.body.csrf_token)).status, 401);
  // an explicit API key wins over the cookie
  assert.equal((await v1(base, '/sessions', 'airlock_console=forged', undefined, { headers: { 'x-api-key': server.apiKey } })).status, 200);

  // signing in again from the same browser ends its old session (no fixation)
  const again = await fetch(`${base}/console/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', [HDR]: '1', cookie: a.cookie },
    body: JSON.stringify({ key: server.apiKey }),
  });
  assert.equal(again.status, 200);
  assert.equal((await v1(base, '/sessions', a.cookie, a.body.csrf_token)).status, 401);

  // an issued server key: revoking it ends its console sessions at once
  // cliEnv: the server's database, its SQLite file or its PostgreSQL (interop-pg-console)
  const out = execFileSync(process.env.AIRLOCK_BIN, ['keys', 'create', '--server'], {
    env: server.cliEnv,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const issued = out.trim().split('\n').at(-1);
  const c = await signIn(base, issued);
  assert.equal(c.res.status, 200);
  assert.match(c.body.key_id, /^apikey_/);
  assert.equal((await v1(base, '/sessions', c.cookie, c.body.csrf_token)).status, 200);
  execFileSync(process.env.AIRLOCK_BIN, ['keys', 'revoke', c.body.key_id], { env: server.cliEnv, stdio: 'ignore' });
  assert.equal((await v1(base, '/sessions', c.cookie, c.body.csrf_token)).status, 401);

  // sign-out: needs the token, then the cookie opens nothing
  assert.equal((await fetch(`${base}/console/logout`, { method: 'POST', headers: { cookie: b.cookie, [HDR]: '1' } })).status, 403);
  const bye = await fetch(`${base}/console/logout`, { method: 'POST', headers: { cookie: b.cookie, [HDR]: b.body.csrf_token } });
  assert.equal(bye.status, 200);
  assert.match(bye.headers.get('set-cookie'), /^airlock_console=; Path=\/; Max-Age=0/);
  assert.equal((await v1(base, '/sessions', b.cookie, b.body.csrf_token)).status, 401);
  // a wrong key is logged and audited as a failed authentication, a sign-in as its own action
  assert.match(server.log(), /console sign-in refused/);
  const audit = readFileSync(path.join(server.dataDir, 'audit.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.ok(audit.some((r) => r.action === 'auth.fail' && JSON.stringify(r).includes('/console/login')));
  assert.ok(audit.filter((r) => r.action === 'console.sign_in').length >= 3);
  assert.ok(!audit.some((r) => JSON.stringify(r).includes(server.apiKey)), 'no key in the audit log');
});

test('console over TLS: the cookie is Secure', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'airlock-console-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cert = makeEdgeCert(dir);
  const server = await startServer({ args: ['--tls-cert', cert.cert, '--tls-key', cert.key] });
  t.after(() => server.stop());
  const body = JSON.stringify({ key: server.apiKey });
  const res = await new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port: server.port,
        path: '/console/login',
        method: 'POST',
        ca: readFileSync(cert.ca),
        headers: { 'content-type': 'application/json', [HDR]: '1', 'content-length': Buffer.byteLength(body) },
      },
      (r) => {
        r.resume();
        r.on('end', () => resolve(r));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
  assert.equal(res.statusCode, 200);
  assert.match(res.headers['set-cookie'][0], /; HttpOnly; SameSite=Strict; Secure$/);
});

test('console in Chromium: sign in, watch a session live, approve one ask-gated call and deny another, sign out', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`no Chromium at ${CHROMIUM} (apt-get install chromium; tools/deps.sh installs it)`);
    return;
  }
  const puppeteer = (await import('puppeteer-core')).default;
  const hostile = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
  const hostileResult = 'hi <svg onload="window.__pwned=3"></svg> [click](javascript:window.__pwned=4) <a href="javascript:window.__pwned=5">x</a>';
  const mock = await startMockModel([
    { content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo hi' } }] },
    { content: [{ type: 'text', text: `The command printed hi. ${hostile}` }] },
    { content: [{ type: 'tool_use', name: 'write', input: { file_path: 'x.txt', content: 'x' } }] },
    { match: 'no writes today', content: [{ type: 'text', text: 'Understood, not writing.' }] },
    { content: [{ type: 'thinking', thinking: 'They are back.' }, { type: 'text', text: 'Back again.' }] },
    { delay_ms: 60000, content: [{ type: 'text', text: 'never delivered' }] },
  ]);
  t.after(() => mock.stop());
  // a tool policy whose decision the page shows on the call it decided
  const policyDir = mkdtempSync(path.join(tmpdir(), 'airlock-console-policy-'));
  t.after(() => rmSync(policyDir, { recursive: true, force: true }));
  const policyFile = path.join(policyDir, 'policy.yaml');
  writeFileSync(policyFile, 'default: allow\nrules:\n  - id: writes-need-a-person\n    effect: ask\n    tools: [write]\n');
  const server = await startServer({
    env: {
      AIRLOCK_MODEL_API_KEY: 'mock-model-key',
      AIRLOCK_MODEL_BASE_URL: mock.url,
      AIRLOCK_MODEL_RETRY_BASE_MS: '10',
      AIRLOCK_POLICY_FILE: policyFile,
    },
  });
  t.after(() => server.stop());
  const relay = await startRelay(server.port);
  t.after(() => relay.close());
  const client = new Anthropic({ baseURL: server.baseURL, apiKey: server.apiKey, maxRetries: 0 });
  const agent = await client.beta.agents.create({
    name: 'console-agent',
    model: 'claude-test-model',
    tools: [{ type: 'agent_toolset_20260401', default_config: { permission_policy: { type: 'always_ask' } } }],
  });
  const env = await client.beta.environments.create({ name: 'console-env', config: { type: 'self_hosted' } });
  // more sessions than one page of the list holds (20)
  for (let i = 0; i < 21; i++) await client.beta.sessions.create({ agent: agent.id, environment_id: env.id, title: `filler ${i}` });
  const session = await client.beta.sessions.create({ agent: agent.id, environment_id: env.id, title: 'Console test' });

  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage'],
  });
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const foreign = [];
  const consoleErrors = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.protocol !== 'data:' && u.origin !== relay.url) foreign.push(r.url());
  });
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  const bad = [];
  page.on('response', (r) => r.status() >= 400 && bad.push(`${r.status()} ${r.request().method()} ${r.url()}`));
  // on a failure, say what the page showed and which requests failed
  try {
    await run(page, bad);
  } catch (e) {
    const text = await page.$eval('main', (m) => m.innerText).catch((err) => String(err));
    console.log(`page:\n${text}\nfailed requests:\n${bad.join('\n')}\nconsole:\n${consoleErrors.join('\n')}`);
    throw e;
  }
  async function run(page) {
  const resp = await page.goto(`${relay.url}/console/`);
  assert.match(resp.headers()['content-security-policy'], /default-src 'self'/);
  await page.waitForSelector('#signin');

  // a wrong key is refused and says so
  await page.type('#key', 'alk_srv_wrong');
  await page.click('#signin button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#signin-error')?.textContent.includes('invalid API key'));
  // the right one opens the sessions list, which shows the SDK's session
  await page.$eval('#key', (e) => (e.value = ''));
  await page.type('#key', server.apiKey);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector(`tr[data-session-id="${session.id}"]`);
  const row = await page.$eval(`tr[data-session-id="${session.id}"]`, (r) => r.textContent);
  assert.match(row, /Console test/);
  assert.match(row, /idle/);
  assert.match(row, /console-agent/);
  // the key is in no storage a script can read, the cookie not in document.cookie
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
  assert.ok(!stored.includes(server.apiKey) && !stored.includes('airlock_console'), stored);

  // filters: no session is running; back to any status
  await page.select('#filter-status', 'running');
  await page.waitForFunction(() => location.hash.includes('status=running') && !document.querySelector('tr[data-session-id]'));
  assert.match(await page.$eval('main', (m) => m.textContent), /No sessions here/);
  await page.select('#filter-status', '');
  await page.waitForSelector(`tr[data-session-id="${session.id}"]`);
  // paging with the API's cursors: 20 here, the 2 oldest on the next page, and back
  assert.equal((await page.$$('tr[data-session-id]')).length, 20);
  await page.click('.pager a[href*="page="]');
  await page.waitForFunction(() => document.querySelectorAll('tr[data-session-id]').length === 2);
  assert.deepEqual(await page.$$eval('tr[data-session-id] td:first-child', (ns) => ns.map((n) => n.textContent)), ['filler 1', 'filler 0']);
  await page.click('.pager a');
  await page.waitForSelector(`tr[data-session-id="${session.id}"]`);
  const shots = path.join(path.dirname(process.env.AIRLOCK_BIN), '..', 'tests', 'console', 'screenshots');
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, 'sessions.png') });
  await page.click(`tr[data-session-id="${session.id}"] a`);
  await page.waitForSelector('#stream-state[data-state="live"]');

  // events arrive live: the message is sent by the SDK after the page is open
  await client.beta.sessions.events.send(session.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'run echo' }] }],
  });
  await page.waitForSelector('li[data-event-type="user.message"]');
  const approve = await page.waitForSelector('button[data-action="approve"]');
  const useId = await approve.evaluate((b) => b.dataset.toolUseId);
  const card = await page.$eval(`li[data-event-id="${useId}"]`, (c) => c.textContent);
  assert.match(card, /bash/);
  assert.match(card, /echo hi/);
  assert.match(card, /ask/);
  await approve.click();
  await page.waitForSelector(`li[data-event-id="${useId}"] [data-confirmation="allow"]`);
  await page.waitForFunction(() => document.querySelector('#session-status')?.textContent.includes('running'));
  // the worker's part (no worker here): the allowed call's result
  await client.beta.sessions.events.send(session.id, {
    events: [{ type: 'user.tool_result', tool_use_id: useId, content: [{ type: 'text', text: hostileResult }], is_error: false }],
  });
  await page.waitForFunction(() =>
    [...document.querySelectorAll('li[data-event-type="agent.message"]')].some((n) => n.textContent.includes('The command printed hi.')),
  );
  // hostile model output is shown as text and runs nothing
  const msg = await page.$$eval('li[data-event-type="agent.message"] .text', (ns) => ns.map((n) => n.textContent).join('\n'));
  assert.ok(msg.includes(hostile), msg);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal(await page.$('#events img, #events svg, #events script, #events a'), null);
  assert.ok((await page.$eval(`li[data-event-id="${useId}"]`, (c) => c.textContent)).includes(hostileResult));

  // a message typed in the console, then a call denied with a reason
  await page.waitForFunction(() => document.querySelector('#session-status')?.textContent.includes('idle'));
  await page.type('#message', 'now write a file');
  await page.click('#composer button[type=submit]');
  const deny = await page.waitForSelector('button[data-action="deny"]');
  const writeId = await deny.evaluate((b) => b.dataset.toolUseId);
  assert.notEqual(writeId, useId);
  assert.match(await page.$eval(`li[data-event-id="${writeId}"]`, (c) => c.textContent), /policy rule writes-need-a-person \(ask\)/);
  await page.type(`li[data-event-id="${writeId}"] .deny-reason`, 'no writes today');
  await deny.click();
  await page.waitForSelector(`li[data-event-id="${writeId}"] [data-confirmation="deny"]`);
  await page.waitForFunction(() =>
    [...document.querySelectorAll('li[data-event-type="agent.message"]')].some((n) => n.textContent.includes('Understood, not writing.')),
  );
  const denied = await page.$eval(`li[data-event-id="${writeId}"]`, (c) => c.textContent);
  assert.match(denied, /Denied: no writes today/);
  assert.match(denied, /Error result/);

  // the session's log agrees: one allow, one deny with its reason, all from the console
  const events = [];
  for await (const e of client.beta.sessions.events.list(session.id, { limit: 100 })) events.push(e);
  const confs = events.filter((e) => e.type === 'user.tool_confirmation');
  assert.deepEqual(
    confs.map((e) => [e.tool_use_id, e.result, e.deny_message ?? null]),
    [
      [useId, 'allow', null],
      [writeId, 'deny', 'no writes today'],
    ],
  );
  assert.ok(events.some((e) => e.type === 'user.message' && e.content[0].text === 'now write a file'));
  // every event shown once, though the page read history and stream both
  const ids = await page.$$eval('li[data-event-id]', (ns) => ns.map((n) => n.dataset.eventId));
  assert.equal(new Set(ids).size, ids.length);

  // a reload resumes from the events list: same events, no duplicates
  await page.reload();
  await page.waitForSelector('#stream-state[data-state="live"]');
  const ids2 = await page.$$eval('li[data-event-id]', (ns) => ns.map((n) => n.dataset.eventId));
  // the session may still be ending its turn (status events after the last message):
  // the same events in the same order, then only new ones, none twice
  assert.deepEqual(ids2.slice(0, ids.length), ids);
  assert.equal(new Set(ids2).size, ids2.length);

  // a dropped connection: what happened meanwhile appears once it is back, nothing twice
  relay.cut();
  await page.waitForSelector('#stream-state[data-state="reconnecting"]');
  await client.beta.sessions.events.send(session.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'while you were away' }] }],
  });
  const back = (await client.beta.sessions.events.list(session.id, { limit: 1000 })).data;
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(!(await page.$$eval('li[data-event-type="user.message"]', (ns) => ns.some((n) => n.textContent.includes('while you were away')))));
  relay.restore();
  await page.waitForSelector('#stream-state[data-state="live"]');
  await page.waitForFunction(() =>
    [...document.querySelectorAll('li[data-event-type="agent.message"]')].some((n) => n.textContent.includes('Back again.')),
  );
  assert.match(await page.$eval('li[data-event-type="agent.thinking"]', (n) => n.textContent), /thinking/i);
  const ids3 = await page.$$eval('li[data-event-id]', (ns) => ns.map((n) => n.dataset.eventId));
  assert.equal(new Set(ids3).size, ids3.length, 'no event twice after the reconnect');
  assert.ok(back.every((e) => ids3.includes(e.id) || !['user.message', 'agent.message'].includes(e.type)));

  // interrupt a turn whose model call hangs
  await page.waitForFunction(() => document.querySelector('#session-status')?.textContent.includes('idle'));
  await page.type('#message', 'take your time');
  await page.click('#composer button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#session-status')?.textContent.includes('running'));
  while ((await mock.requests()).length < 6) await new Promise((r) => setTimeout(r, 20));
  await page.click('#interrupt');
  await page.waitForSelector('li[data-event-type="user.interrupt"]');
  await page.waitForFunction(() => document.querySelector('#session-status')?.textContent.includes('idle'));
  assert.ok(!(await page.$eval('#events', (n) => n.textContent)).includes('never delivered'));

  assert.ok((await page.$eval('#events', (n) => n.textContent)).includes('Model request cancelled'));
  await page.screenshot({ path: path.join(shots, 'session.png'), fullPage: true });

  // archive, in two steps; the list then hides it unless asked for archived ones
  await page.click('#archive');
  assert.equal(await page.$eval('#archived', (n) => n.hidden), true, 'one click does not archive');
  await page.click('#archive');
  await page.waitForSelector('#archived:not([hidden])');
  assert.ok((await client.beta.sessions.retrieve(session.id)).archived_at);
  await page.goto(`${relay.url}/console/#/sessions`);
  await page.waitForSelector('tr[data-session-id]');
  assert.equal(await page.$(`tr[data-session-id="${session.id}"]`), null);
  await page.click('#filter-archived');
  await page.waitForSelector(`tr[data-session-id="${session.id}"]`);
  assert.match(await page.$eval(`tr[data-session-id="${session.id}"]`, (r) => r.textContent), /archived/);

  // sign out: back to the form, and the browser's cookie opens nothing any more
  await page.click('#signout');
  await page.waitForSelector('#signin');
  const after = await page.evaluate(async () => (await fetch('/v1/sessions', { headers: { 'x-airlock-console': '1' } })).status);
  assert.equal(after, 401);
  assert.deepEqual(foreign, [], 'no request left for another origin');
  assert.deepEqual(
    consoleErrors.filter((e) => !/401|403|Failed to load resource/.test(e)),
    [],
  );
}
});
