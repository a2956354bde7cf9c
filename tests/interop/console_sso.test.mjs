// The console's single sign-on: the authorization code flow with PKCE against a real
// OpenID provider (npm oidc-provider, its own login and consent pages), walked as a
// browser walks it (redirects followed by hand, a cookie jar per host). The console
// session that results is the user's: their own sessions only, their role, their token's
// lifetime. Refusals: a state the server never issued, a replayed state, an IdP error,
// and a user whose groups map to no role.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { startServer } from './lib/server.mjs';
import { startIdp } from './lib/oidc_idp.mjs';
import { freePort } from './lib/events.mjs';

let idp, srv, base, dir;

before(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  idp = await startIdp({
    users: { alice: { groups: ['auditors'] }, bob: { groups: ['interns'] }, zed: { groups: ['contractors'] } },
    webClient: { redirectUri: `${base}/console/oidc/callback` },
  });
  dir = mkdtempSync(path.join(tmpdir(), 'airlock-sso-'));
  const policy = path.join(dir, 'policy.yaml');
  writeFileSync(policy, 'default: deny\ndefault_role: none\nroles:\n  user: [auditors, interns]\nrules: []\n');
  srv = await startServer({
    args: ['--listen', `127.0.0.1:${port}`],
    env: {
      AIRLOCK_OIDC_ISSUER: idp.issuer, AIRLOCK_OIDC_AUDIENCE: 'airlock',
      AIRLOCK_OIDC_CLIENT_ID: 'airlock-console', AIRLOCK_OIDC_CLIENT_SECRET: 'console-secret',
      AIRLOCK_OIDC_REDIRECT_URI: `${base}/console/oidc/callback`, AIRLOCK_OIDC_SCOPE: 'openid email api',
      AIRLOCK_POLICY_FILE: policy,
    },
  });
  for (let i = 0; i < 100 && !/identity provider keys loaded/.test(srv.log()); i++)
    await new Promise((r) => setTimeout(r, 50));
});
after(async () => {
  await srv?.stop();
  await idp?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// A browser in miniature: per-host cookies, redirects by hand, the IdP's dev login and
// consent forms submitted. Returns the last answer from airlock's callback. start: the
// server the sign-in begins on; tamper (may be async) sees, and may change, the callback URL.
async function signInAs(user, { tamper, start = base } = {}) {
  const jar = new Map();
  const cookieFor = (u) => [...(jar.get(new URL(u).host) ?? new Map())].map(([k, v]) => `${k}=${v}`).join('; ');
  const keep = (u, res) => {
    const m = jar.get(new URL(u).host) ?? new Map();
    for (const c of res.headers.getSetCookie()) {
      const [kv] = c.split(';');
      const i = kv.indexOf('=');
      m.set(kv.slice(0, i), kv.slice(i + 1));
    }
    jar.set(new URL(u).host, m);
  };
  let url = `${start}/console/oidc/login`;
  for (let hop = 0; hop < 20; hop++) {
    if (tamper && url.startsWith(`${base}/console/oidc/callback`)) url = await tamper(url);
    const res = await fetch(url, { redirect: "manual", headers: { cookie: cookieFor(url) } });
    keep(url, res);
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location'), url).href;
      continue;
    }
    if (url.startsWith(idp.issuer) && /\/interaction\//.test(url)) {
      const html = await res.text();
      const prompt = /name="prompt" value="(\w+)"/.exec(html)?.[1];
      const body = prompt === 'login' ? `prompt=login&login=${user}&password=any` : 'prompt=consent';
      const post = await fetch(url, { method: 'POST', redirect: 'manual',
        headers: { cookie: cookieFor(url), 'content-type': 'application/x-www-form-urlencoded' }, body });
      keep(url, post);
      url = new URL(post.headers.get('location'), url).href;
      continue;
    }
    return { res, jar, text: await res.text() };
  }
  throw new Error('too many redirects');
}

test('single sign-on gives a console session of that user, with their sessions only', async () => {
  const admin = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
  const agent = await admin.beta.agents.create({ name: 'a', model: 'claude-test' });
  const env = await admin.beta.environments.create({ name: 'e', config: { type: 'self_hosted' } });
  const aliceApi = new Anthropic({ baseURL: srv.baseURL, apiKey: null, authToken: await idp.token('alice'), maxRetries: 0 });
  const mine = await aliceApi.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  await admin.beta.sessions.create({ agent: agent.id, environment_id: env.id });

  const cfg = await (await fetch(`${base}/console/config`)).json();
  assert.equal(cfg.single_sign_on, true);
  const { res, jar, text } = await signInAs('alice');
  assert.equal(res.status, 200);
  assert.match(text, /http-equiv="refresh" content="0;url=\/console\/"/);
  const cookie = jar.get(new URL(base).host).get('airlock_console');
  assert.ok(cookie, 'the console cookie is set');
  assert.match(res.headers.get('set-cookie'), /HttpOnly; SameSite=Strict/);
  // the page's first request: who am I
  const who = await (await fetch(`${base}/console/session`, {
    headers: { cookie: `airlock_console=${cookie}`, 'x-airlock-console': '1' } })).json();
  assert.equal(who.key_id, 'user:alice');
  // the API as alice: her session, not the API key's
  const list = await (await fetch(`${base}/v1/sessions`, {
    headers: { cookie: `airlock_console=${cookie}`, 'x-airlock-console': who.csrf_token } })).json();
  assert.deepEqual(list.data.map((s) => s.id), [mine.id]);
  // and alice's role: agents are not hers to make
  const made = await fetch(`${base}/v1/agents`, { method: 'POST', body: '{"name":"x","model":"m"}',
    headers: { cookie: `airlock_console=${cookie}`, 'x-airlock-console': who.csrf_token, 'content-type': 'application/json' } });
  assert.equal(made.status, 403);
  assert.match(srv.log(), /console sign-in.*user=alice.*method=oidc/);
});

test('a forged or replayed state, an IdP error and a user with no role are refused', async () => {
  const forged = await signInAs('alice', { tamper: (u) => u.replace(/state=[^&]+/, 'state=forged') });
  assert.equal(forged.res.status, 400);
  assert.match(forged.text, /unknown or expired sign-in/);
  let callback;
  const first = await signInAs('alice', { tamper: (u) => (callback = u) });
  assert.equal(first.res.status, 200);
  const replay = await fetch(callback);
  assert.equal(replay.status, 400, 'a state is good once');
  const denied = await fetch(`${base}/console/oidc/callback?error=access_denied&state=x`);
  assert.equal(denied.status, 400);
  const zed = await signInAs('zed');
  assert.equal(zed.res.status, 401);
  assert.match(zed.text, /no role/);
  assert.equal(zed.jar.get(new URL(base).host)?.get('airlock_console'), undefined);
});

// A sign-in in progress is a database row (docs/server/console.md): begun on one server, it
// completes after that server restarts on the same data or, on PostgreSQL, on another
// replica of the same database; its state is good once across them.
test('a single sign-on begun before a restart, or on another replica, completes there', async (t) => {
  const own = mkdtempSync(path.join(tmpdir(), 'airlock-sso-restart-'));
  t.after(() => rmSync(own, { recursive: true, force: true }));
  // the same client and redirect URI as srv (the one the provider knows); the callback is
  // taken to the server under test by hand
  const onPostgres = !!process.env.AIRLOCK_TEST_PG_PORT;
  const env = {
    ...(onPostgres ? { AIRLOCK_DATABASE_URL: srv.cliEnv.AIRLOCK_DATABASE_URL } : {}),
    AIRLOCK_OIDC_ISSUER: idp.issuer, AIRLOCK_OIDC_AUDIENCE: 'airlock',
    AIRLOCK_OIDC_CLIENT_ID: 'airlock-console', AIRLOCK_OIDC_CLIENT_SECRET: 'console-secret',
    AIRLOCK_OIDC_REDIRECT_URI: `${base}/console/oidc/callback`, AIRLOCK_OIDC_SCOPE: 'openid email api',
    AIRLOCK_POLICY_FILE: path.join(dir, 'policy.yaml'),
  };
  const ready = async (s) => {
    for (let i = 0; i < 100 && !/identity provider keys loaded/.test(s.log()); i++)
      await new Promise((r) => setTimeout(r, 50));
  };
  // SQLite: a server of its own, restarted mid sign-in. PostgreSQL: srv's database, and
  // the sign-in begun on srv completes on a second replica.
  const first = onPostgres ? srv : await startServer({ dataDir: own, env });
  await ready(first);
  let second;
  t.after(async () => {
    if (first !== srv) await first.stop();
    await second?.stop();
  });
  let callback;
  const done = await signInAs('alice', {
    start: first.baseURL,
    tamper: async (u) => {
      callback = u;
      if (onPostgres) second = await startServer({ env });
      else {
        await first.stop();
        second = await startServer({ dataDir: own, env });
      }
      await ready(second);
      return u.replace(base, second.baseURL);
    },
  });
  assert.equal(done.res.status, 200, done.text);
  const cookie = done.res.headers.get('set-cookie').split(';')[0];
  const who = await (await fetch(`${second.baseURL}/console/session`, { headers: { cookie, 'x-airlock-console': '1' } })).json();
  assert.equal(who.key_id, 'user:alice');
  const list = await fetch(`${second.baseURL}/v1/sessions`, { headers: { cookie, 'x-airlock-console': who.csrf_token } });
  assert.equal(list.status, 200);
  // good once: not again here, nor on the server it began on
  assert.equal((await fetch(callback.replace(base, second.baseURL))).status, 400);
  if (onPostgres) assert.equal((await fetch(callback)).status, 400);
});

test('without a client configured, single sign-on is off', async () => {
  const s2 = await startServer({ env: { AIRLOCK_OIDC_ISSUER: idp.issuer, AIRLOCK_OIDC_AUDIENCE: 'airlock' } });
  try {
    assert.equal((await (await fetch(`${s2.baseURL}/console/config`)).json()).single_sign_on, false);
    assert.equal((await fetch(`${s2.baseURL}/console/oidc/login`, { redirect: 'manual' })).status, 404);
  } finally {
    await s2.stop();
  }
});

// The pages follow the API's permissions: signed in by single sign-on as alice (role
// user), in Chromium, each page shows what her role may read and words the API's 403
// where it may not, and no write she tries goes through.
const CHROMIUM = process.env.AIRLOCK_CHROMIUM ?? '/usr/bin/chromium';
test('the console pages as a user: what the role may read, the API\'s refusals said', {
  skip: existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium; tools/deps.sh installs it)`,
}, async () => {
  const admin = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
  const agent = await admin.beta.agents.create({ name: 'for users', model: 'claude-test', system: 'v1' });
  await admin.beta.agents.update(agent.id, { version: 1, system: 'v2' });
  const env = await admin.beta.environments.create({ name: 'users env', config: { type: 'self_hosted' } });
  const { jar } = await signInAs('alice');
  const cookie = jar.get(new URL(base).host).get('airlock_console');
  const puppeteer = (await import('puppeteer-core')).default;
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage();
    await page.setCookie({ name: 'airlock_console', value: cookie, url: base, httpOnly: true, sameSite: 'Strict' });
    const errorOf = async (hash) => {
      await page.goto('about:blank'); // a new document: not the last page's error
      await page.goto(`${base}/console/${hash}`);
      await page.waitForSelector('main p.error');
      return page.$eval('main p.error', (e) => e.textContent);
    };
    // refused by the API, and the page says so in the API's words
    assert.match(await errorOf('#/audit'), /role user may not GET \/v1\/audit_events/);
    assert.match(await errorOf('#/tunnels'), /role user may not GET \/v1\/tunnels/);
    // readable: agents, their versions compared; the edit is refused and nothing changes
    await page.goto(`${base}/console/#/agents/${agent.id}/compare?a=1&b=2`);
    await page.waitForSelector('section.diff[data-field="system"]');
    await page.goto(`${base}/console/#/agents/${agent.id}`);
    await page.waitForSelector('#agent-form');
    await page.$eval('#agent-system', (e) => (e.value = 'v3 by alice'));
    await page.click('#agent-form button[type=submit]');
    await page.waitForFunction(() => /role user may not POST/.test(document.querySelector('#agent-error').textContent));
    assert.equal((await admin.beta.agents.retrieve(agent.id)).version, 2);
    // an environment: readable, but not its queue (the counts are a developer's), its
    // work items (an admin's: the page says so and lists none) nor keys
    await admin.beta.sessions.create({ agent: agent.id, environment_id: env.id });
    await page.goto(`${base}/console/#/environments/${env.id}`);
    await page.waitForSelector('#key-form');
    assert.match(await page.$eval('#stats-error', (e) => e.textContent), /role user may not GET/);
    assert.match(await page.$eval('#work-denied', (e) => e.textContent), /server API keys and administrators/);
    assert.equal(await page.$('tr[data-work-id]'), null);
    await page.click('#create-key');
    await page.waitForFunction(() => /role user may not POST/.test(document.querySelector('#key-error').textContent));
    assert.equal(await page.$('#new-key'), null);
  } finally {
    await browser.close();
  }
});
