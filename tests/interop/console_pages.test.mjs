// The web console's resource pages (docs/server/console.md): agents, environments, vaults
// and credentials, tunnels and the audit log, driven in Debian's headless Chromium by the
// pinned puppeteer-core, each checked against the API it acts through. Screenshots of each
// page go to build/tests/console/screenshots/ (not committed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { startServer } from './lib/server.mjs';
import { makeEdgeCert } from './lib/edge_cert.mjs';
import { startMockModel } from './lib/mockmodel.mjs';

const CHROMIUM = process.env.AIRLOCK_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = path.join(path.dirname(process.env.AIRLOCK_BIN ?? '.'), '..', 'tests', 'console', 'screenshots');
const HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
// what a model may write: Markdown with tricks in it
const MARKDOWN = [
  '# Report',
  '',
  'The build is **done**, *mostly*; run `make test` again.',
  '',
  '- first',
  '- second with my_var_name',
  '',
  '1. one',
  '2. two',
  '',
  '```html',
  '<script>window.__pwned=6</script>',
  '<img src=x onerror="window.__pwned=7">',
  '```',
  '',
  '> quoted <b>not bold</b>',
  '',
  '[click me](javascript:window.__pwned=8) and ![chart](http://evil.example/x.png)',
].join('\n');
const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium; tools/deps.sh installs it)`;

let server, client, browser, page, tmp;
const foreign = [];
const pageErrors = [];
const procs = [];

before(async () => {
  if (skip) return;
  tmp = mkdtempSync(path.join(tmpdir(), 'airlock-console-pages-'));
  makeEdgeCert(tmp, 'console CA');
  // the tunnel edge on, for the tunnels page's gateway connections
  server = await startServer({
    env: {
      AIRLOCK_TUNNEL_LISTEN: '127.0.0.1:0',
      AIRLOCK_TUNNEL_TLS_CERT: path.join(tmp, 'edge.pem'),
      AIRLOCK_TUNNEL_TLS_KEY: path.join(tmp, 'edge.key'),
      AIRLOCK_TUNNEL_DOMAIN: 'tunnel.test',
    },
  });
  client = new Anthropic({ baseURL: server.baseURL, apiKey: server.apiKey, maxRetries: 0 });
  const puppeteer = (await import('puppeteer-core')).default;
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage'],
  });
  page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.protocol !== 'data:' && u.origin !== server.baseURL) foreign.push(r.url());
  });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  await page.goto(`${server.baseURL}/console/`);
  await page.waitForSelector('#signin');
  await page.type('#key', server.apiKey);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#nav:not([hidden])');
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  if (skip) return;
  try {
    // every page: nothing left for another origin, nothing hostile ran, no script error
    assert.deepEqual(foreign, [], 'no request left for another origin');
    assert.equal(await page?.evaluate(() => window.__pwned), undefined);
    assert.deepEqual(pageErrors, []);
  } finally {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    await browser?.close();
    await server?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
});

// Loads a console page by its hash and waits for sel (through about:blank: a hash
// change alone keeps the document, and sel could match the page before).
async function open(hash, sel) {
  await page.goto('about:blank');
  await page.goto(`${server.baseURL}/console/${hash}`);
  await page.waitForSelector(sel);
}

// Types into a field after clearing it (textareas and inputs alike).
async function fill(sel, text) {
  await page.$eval(sel, (e) => (e.value = ''));
  if (text.length > 200) await page.$eval(sel, (e, t) => (e.value = t), text);
  else await page.type(sel, text);
}

const mainText = () => page.$eval('main', (m) => m.innerText);

// A screenshot of the page as it is, which must show no placeholder of a missing value,
// and whose every control has a name a screen reader says (a label, aria-label, or text
// for a button or link).
async function shot(name, fullPage = true) {
  assert.doesNotMatch(await mainText(), /\bnull\b|\bundefined\b|\[object /, `${name}: a value missing from the page`);
  const unnamed = await page.$$eval('input, select, textarea, button, a[href]', (ns) =>
    ns
      .filter((n) => n.type !== 'hidden' && n.offsetParent !== null)
      .filter((n) => !(n.labels?.length || n.getAttribute('aria-label') || n.getAttribute('aria-labelledby') || ((n.tagName === 'BUTTON' || n.tagName === 'A') && n.textContent.trim())))
      .map((n) => n.outerHTML.slice(0, 120)),
  );
  assert.deepEqual(unnamed, [], `${name}: controls without a name`);
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
}

// On a failure, say what the page showed.
async function explain(fn) {
  try {
    await fn();
  } catch (e) {
    console.log(`page:\n${await mainText().catch((err) => String(err))}`);
    throw e;
  }
}

test('console agents: create, edit as a new version, compare two versions, hostile names as text', { skip }, () =>
  explain(async () => {
    await open('#/agents', '#new-agent');
    await page.click('#new-agent');
    await page.waitForSelector('#agent-form');
    await fill('#agent-name', `Reviewer ${HOSTILE}`);
    await fill('#agent-model', 'claude-test-model');
    await fill('#agent-system', 'You review code.\nBe brief.\nCite lines.');
    // bad JSON is refused in the page, and what was typed stays
    await fill('#agent-tools', '[{"type": "agent_toolset_20260401"');
    await page.click('#agent-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#agent-error').textContent.includes('tools: not valid JSON'));
    assert.equal(await page.$eval('#agent-system', (e) => e.value), 'You review code.\nBe brief.\nCite lines.');
    await fill('#agent-tools', '[{"type": "agent_toolset_20260401"}]');
    await page.click('#agent-form button[type=submit]');
    await page.waitForSelector('#agent-version');
    const agentId = decodeURIComponent(/#\/agents\/([^/?]+)/.exec(page.url())[1]);
    const v1 = await client.beta.agents.retrieve(agentId);
    assert.equal(v1.version, 1);
    assert.equal(v1.name, `Reviewer ${HOSTILE}`);
    assert.equal(v1.system, 'You review code.\nBe brief.\nCite lines.');
    assert.equal(v1.tools[0].type, 'agent_toolset_20260401');
    // the name is text, not markup
    assert.equal(await page.$eval('#agent-title', (e) => e.textContent), `Reviewer ${HOSTILE}`);
    assert.equal(await page.$('main img, main script'), null);

    // a server-side refusal is shown and the form keeps what was typed
    await fill('#agent-metadata', '{"team": 5}');
    await page.click('#agent-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#agent-error').textContent.includes('metadata'));
    assert.equal((await client.beta.agents.retrieve(agentId)).version, 1);

    // edit: one line of the system prompt and the metadata → version 2
    await fill('#agent-metadata', '{"team": "platform"}');
    await fill('#agent-system', 'You review code.\nBe thorough.\nCite lines.');
    await page.click('#agent-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#agent-version').textContent === '2');
    assert.match(await page.$eval('#agent-saved', (e) => e.textContent), /Saved as version 2/);
    const v2 = await client.beta.agents.retrieve(agentId);
    assert.equal(v2.version, 2);
    assert.equal(v2.system, 'You review code.\nBe thorough.\nCite lines.');
    assert.deepEqual(v2.metadata, { team: 'platform' });
    assert.deepEqual(v2.model, v1.model, 'the model and its options kept');
    assert.deepEqual(v2.tools, v1.tools);
    // both versions listed
    assert.deepEqual(await page.$$eval('tr[data-version]', (rs) => rs.map((r) => r.dataset.version)), ['2', '1']);

    // another writer in between: the console's save is refused (409), nothing lost
    await client.beta.agents.update(agentId, { version: 2, description: 'from the SDK' });
    await fill('#agent-system', 'mine');
    await page.click('#agent-form button[type=submit]');
    await page.waitForFunction(() => /version 3, not 2/.test(document.querySelector('#agent-error').textContent));
    assert.equal((await client.beta.agents.retrieve(agentId)).version, 3);
    assert.equal(await page.$eval('#agent-system', (e) => e.value), 'mine');

    // compare version 1 with version 2: the changed line, the changed field, the rest unchanged
    await page.reload();
    await page.waitForSelector('#compare');
    await page.select('#compare-a', '1');
    await page.select('#compare-b', '2');
    await page.click('#compare button[type=submit]');
    await page.waitForSelector('#diff-summary');
    assert.match(await page.$eval('#diff-summary', (e) => e.textContent), /^2 fields changed/);
    const fields = await page.$$eval('section.diff', (ss) => ss.map((s) => s.dataset.field));
    assert.deepEqual(fields, ['system', 'metadata']);
    const sys = await page.$$eval('section.diff[data-field="system"] .dl', (ls) =>
      ls.map((l) => `${l.classList.contains('add') ? '+' : l.classList.contains('del') ? '-' : ' '}${l.lastChild.textContent}`),
    );
    assert.deepEqual(sys, [' You review code.', '-Be brief.', '+Be thorough.', ' Cite lines.']);
    assert.match(await page.$eval('#diff-same', (e) => e.textContent), /name, description, model/);
    await shot('agent-compare');
    // a version with itself: the same
    await open(`#/agents/${agentId}/compare?a=3&b=3`, '#diff-none');
    await shot('agent-compare-same');

    // the list shows it at its version
    await open('#/agents', `tr[data-agent-id="${agentId}"]`);
    assert.match(await page.$eval(`tr[data-agent-id="${agentId}"]`, (r) => r.textContent), /v3/);
    await shot('agents', false);
    await page.click(`tr[data-agent-id="${agentId}"] a`);
    await page.waitForSelector('#agent-form');
    await shot('agent');

    // archive: two clicks; then read-only, and the list hides it unless asked
    await page.click('#archive-agent');
    assert.equal((await client.beta.agents.retrieve(agentId)).archived_at, null, 'one click does not archive');
    await page.click('#archive-agent');
    await page.waitForFunction(() => !document.querySelector('#agent-form') && document.querySelector('main').textContent.includes('read-only'));
    assert.ok((await client.beta.agents.retrieve(agentId)).archived_at);
    await open('#/agents', '#filter-archived');
    assert.equal(await page.$(`tr[data-agent-id="${agentId}"]`), null);
    await page.click('#filter-archived');
    await page.waitForSelector(`tr[data-agent-id="${agentId}"]`);
  }),
);

test('console environments: create, the work queue and workers polling, its work items (states, hostile metadata as text, paged), its sessions only, a key shown once', { skip }, () =>
  explain(async () => {
    await open('#/environments', '#env-form');
    await fill('#env-name', `Bank ${HOSTILE}`);
    await fill('#env-description', 'the sandboxes in the bank');
    await page.click('#env-form button[type=submit]');
    await page.waitForSelector('#stats[data-updated]');
    const envId = decodeURIComponent(/#\/environments\/([^/?]+)/.exec(page.url())[1]);
    assert.equal(await page.$eval('#environment-title', (e) => e.textContent), `Bank ${HOSTILE}`);
    assert.equal((await client.beta.environments.retrieve(envId)).name, `Bank ${HOSTILE}`);
    assert.equal(await page.$('main img, main script'), null);
    assert.equal(await page.$eval('#stat-depth', (e) => e.textContent), '0');
    assert.equal(await page.$eval('#stat-workers', (e) => e.textContent), '0');

    // two sessions here and one elsewhere: the queue holds two, the page lists two
    const agent = await client.beta.agents.create({ name: 'env-agent', model: 'claude-test-model' });
    const other = await client.beta.environments.create({ name: 'elsewhere', config: { type: 'self_hosted' } });
    const here = [];
    for (const title of ['here one', 'here two']) here.push((await client.beta.sessions.create({ agent: agent.id, environment_id: envId, title })).id);
    const away = await client.beta.sessions.create({ agent: agent.id, environment_id: other.id, title: 'away' });
    const viaApi = await (await fetch(`${server.baseURL}/v1/sessions?environment_id=${envId}`, { headers: { 'x-api-key': server.apiKey } })).json();
    assert.deepEqual(viaApi.data.map((s) => s.id).sort(), [...here].sort(), 'the environment_id filter');

    // an environment key, shown once; a worker polls with it
    await page.reload();
    await page.waitForSelector('#key-form');
    await fill('#key-name', 'host-3');
    await page.click('#create-key');
    await page.waitForSelector('#new-key');
    const key = await page.$eval('#new-key', (e) => e.value);
    assert.ok(key.length > 20, key);
    const poll = await fetch(`${server.baseURL}/v1/environments/${envId}/work/poll`, {
      headers: { authorization: `Bearer ${key}`, 'anthropic-worker-id': 'console-test-worker' },
    });
    assert.equal(poll.status, 200);
    const work = await poll.json();
    assert.ok(here.includes(work.data.id), 'the key polls this environment');

    // after a reload: the queue as the API shows it, this environment's sessions, the key gone
    await page.reload();
    await page.waitForSelector('#stats[data-updated]');
    assert.equal(await page.$eval('#stat-depth', (e) => e.textContent), '1');
    assert.equal(await page.$eval('#stat-pending', (e) => e.textContent), '1');
    assert.equal(await page.$eval('#stat-workers', (e) => e.textContent), '1');
    assert.match(await page.$eval('#stat-oldest', (e) => e.textContent), /ago/);
    assert.deepEqual((await page.$$eval('tr[data-session-id]', (rs) => rs.map((r) => r.dataset.sessionId))).sort(), [...here].sort());
    assert.equal(await page.$(`tr[data-session-id="${away.id}"]`), null);
    assert.ok(!(await page.content()).includes(key), 'the key is shown once only');
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
    assert.ok(!stored.includes(key));

    // the work items, as the API lists them to a server key: both sessions' items,
    // waiting (one delivered, not yet acknowledged), each linking to its session
    await page.waitForSelector('#work-items[data-updated]');
    const rows = () => page.$$eval('tr[data-work-id]', (rs) => rs.map((r) => ({ id: r.dataset.workId, state: r.dataset.state, session: r.querySelector('a')?.getAttribute('href'), text: r.innerText })));
    let items = await rows();
    assert.equal(items.length, 2);
    assert.ok(items.some((r) => r.id === work.id));
    assert.deepEqual(items.map((r) => r.state), ['queued', 'queued']);
    assert.deepEqual(items.map((r) => decodeURIComponent(r.session.replace('#/sessions/', ''))).sort(), [...here].sort());
    const viaList = await (await fetch(`${server.baseURL}/v1/environments/${envId}/work`, { headers: { 'x-api-key': server.apiKey } })).json();
    assert.deepEqual(items.map((r) => r.id), viaList.data.map((w) => w.id), 'newest first, as the API lists them');
    assert.ok(viaList.data.every((w) => w.secret === null), 'the list carries no secret');

    // the worker acknowledges and beats; a worker's hostile metadata: the row follows
    // with the counters (no reload), the metadata as text
    const token = JSON.parse(Buffer.from(work.secret, 'base64url').toString()).sessions_token;
    const asWorker = { authorization: `Bearer ${token}` };
    assert.equal((await fetch(`${server.baseURL}/v1/environments/${envId}/work/${work.id}/ack`, { method: 'POST', headers: asWorker })).status, 200);
    assert.equal((await fetch(`${server.baseURL}/v1/environments/${envId}/work/${work.id}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`, { method: 'POST', headers: asWorker })).status, 200);
    const meta = await fetch(`${server.baseURL}/v1/environments/${envId}/work/${work.id}`, {
      method: 'POST',
      headers: { 'x-api-key': server.apiKey, 'content-type': 'application/json' },
      body: JSON.stringify({ metadata: { host: HOSTILE, link: 'javascript:window.__pwned=9' } }),
    });
    assert.equal(meta.status, 200);
    await page.waitForFunction((id) => document.querySelector(`tr[data-work-id="${id}"]`)?.dataset.state === 'active', { timeout: 15000 }, work.id);
    items = await rows();
    const acked = items.find((r) => r.id === work.id);
    assert.ok(acked.text.includes(`host: ${HOSTILE}`), acked.text);
    assert.ok(acked.text.includes('link: javascript:window.__pwned=9'), acked.text);
    assert.equal(await page.$eval(`tr[data-work-id="${work.id}"] .work-acked`, (e) => /ago$/.test(e.textContent)), true);
    assert.equal(await page.$eval(`tr[data-work-id="${work.id}"] .work-heartbeat`, (e) => /ago$/.test(e.textContent)), true);
    assert.equal(await page.$eval(`tr[data-work-id="${work.id}"] .work-stop`, (e) => e.textContent), '—');
    assert.equal(await page.$('main img, main script, main a[href^="javascript:"]'), null);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.deepEqual(foreign, [], 'no request left for another origin');
    await shot('environment');

    // a stop asked for shows its time; 22 items page 20 at a time, newest first
    assert.equal((await fetch(`${server.baseURL}/v1/environments/${envId}/work/${work.id}/stop`, { method: 'POST', headers: { ...asWorker, 'content-type': 'application/json' }, body: '{}' })).status, 200);
    for (let i = 0; i < 20; i++) await client.beta.sessions.create({ agent: agent.id, environment_id: envId, title: `more ${i}` });
    await page.reload();
    await page.waitForSelector('#work-items[data-updated]');
    assert.equal((await rows()).length, 20);
    assert.equal(await page.$eval('#work-newer', (e) => e.hidden), true);
    const first = (await rows()).map((r) => r.id);
    await page.click('#work-older');
    await page.waitForFunction(() => document.querySelectorAll('tr[data-work-id]').length === 2);
    const last = await rows();
    assert.deepEqual(last.map((r) => r.id).sort(), items.map((r) => r.id).sort(), 'the two oldest on the second page');
    assert.equal(last.find((r) => r.id === work.id).state, 'stopping');
    assert.match(await page.$eval(`tr[data-work-id="${work.id}"] .work-stop`, (e) => e.textContent), /ago$/);
    assert.equal(await page.$eval('#work-older', (e) => e.hidden), true);
    await page.click('#work-newer');
    await page.waitForFunction(() => document.querySelectorAll('tr[data-work-id]').length === 20);
    assert.deepEqual((await rows()).map((r) => r.id), first);
    await open('#/environments', `tr[data-environment-id="${envId}"]`);
    await shot('environments', false);

    // archive in two clicks; then no key can be made there
    await open(`#/environments/${envId}`, '#archive-environment');
    await page.click('#archive-environment');
    assert.equal((await client.beta.environments.retrieve(envId)).archived_at, null, 'one click does not archive');
    await page.click('#archive-environment');
    await page.waitForFunction(() => !document.querySelector('#key-form') && !document.querySelector('#archive-environment'));
    assert.ok((await client.beta.environments.retrieve(envId)).archived_at);
  }),
);

test('console vaults: create a vault and a credential, the secret never comes back, archive', { skip }, () =>
  explain(async () => {
    const secret = `tok_${'s3cr3t'.repeat(4)}_console`;
    const bodies = [];
    const seen = (r) => {
      if (r.url().includes('/v1/')) bodies.push(r.text().catch(() => ''));
    };
    page.on('response', seen);
    await open('#/vaults', '#vault-form');
    await fill('#vault-name', `Payments ${HOSTILE}`);
    await page.click('#vault-form button[type=submit]');
    await page.waitForSelector('#cred-form');
    const vaultId = decodeURIComponent(/#\/vaults\/([^/?]+)/.exec(page.url())[1]);
    assert.equal(await page.$eval('#vault-title', (e) => e.textContent), `Payments ${HOSTILE}`);
    assert.equal(await page.$eval('#cred-token', (e) => e.type), 'password');

    // a URL the API refuses: said, the URL kept for a retry, the secret dropped
    await fill('#cred-name', 'ledger');
    await fill('#cred-url', 'http://ledger.example.com/mcp');
    await fill('#cred-token', secret);
    await page.click('#cred-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#cred-error').textContent.includes('mcp_server_url'));
    assert.equal(await page.$eval('#cred-url', (e) => e.value), 'http://ledger.example.com/mcp');
    assert.equal(await page.$eval('#cred-token', (e) => e.value), '');

    await fill('#cred-url', 'https://ledger.example.com/mcp');
    await fill('#cred-token', secret);
    await page.click('#cred-form button[type=submit]');
    await page.waitForSelector('tr[data-credential-id]');
    const credId = await page.$eval('tr[data-credential-id]', (r) => r.dataset.credentialId);
    const row = await page.$eval('tr[data-credential-id]', (r) => r.textContent);
    assert.match(row, /ledger/);
    assert.match(row, /https:\/\/ledger\.example\.com\/mcp/);
    assert.match(row, /write-only/);
    assert.equal(await page.$eval('#cred-token', (e) => e.value), '');
    // stored (the API has it) but never shown, never returned
    const cred = await client.beta.vaults.credentials.retrieve(credId, { vault_id: vaultId });
    assert.equal(cred.auth.mcp_server_url, 'https://ledger.example.com/mcp');
    assert.ok(!JSON.stringify(cred).includes(secret));
    assert.ok(!(await page.content()).includes(secret), 'the secret is in no page');
    await shot('vault');

    // archive the credential in two clicks
    await page.click('button[data-action="archive-credential"]');
    assert.equal((await client.beta.vaults.credentials.retrieve(credId, { vault_id: vaultId })).archived_at, null);
    await page.click('button[data-action="archive-credential"]');
    await page.waitForFunction(() => !document.querySelector('tr[data-credential-id]'));
    assert.ok((await client.beta.vaults.credentials.retrieve(credId, { vault_id: vaultId })).archived_at);
    await page.click('#filter-archived');
    await page.waitForFunction(() => /purged/.test(document.querySelector('tr[data-credential-id]')?.textContent ?? ''));

    // the list, then the vault archived
    await open('#/vaults', `tr[data-vault-id="${vaultId}"]`);
    await shot('vaults', false);
    await open(`#/vaults/${vaultId}`, '#archive-vault');
    await page.click('#archive-vault');
    await page.click('#archive-vault');
    await page.waitForFunction(() => !document.querySelector('#cred-form'));
    assert.ok((await client.beta.vaults.retrieve(vaultId)).archived_at);
    page.off('response', seen);
    const all = (await Promise.all(bodies)).join('\n');
    assert.ok(all.length > 0);
    assert.ok(!all.includes(secret), 'no answer the page received holds the secret');
  }),
);

// Starts `airlock gateway` for a tunnel with token; resolves with the process once its
// stderr matches re (its connections registered, or the edge's refusal).
function startGateway(name, tunnel, token, re) {
  const edgePort = Number(/tunnel edge ready.* port=(\d+)/.exec(server.log())[1]);
  writeFileSync(path.join(tmp, `${name}.token`), token, { mode: 0o600 });
  writeFileSync(
    path.join(tmp, `${name}.yaml`),
    [
      `server: 127.0.0.1:${edgePort}`,
      'server_name: localhost',
      `server_ca_file: ${path.join(tmp, 'ca.pem')}`,
      `token_file: ${path.join(tmp, `${name}.token`)}`,
      `tunnel_domain: ${tunnel.domain}`,
      'routes:',
      '  nothing: http://127.0.0.1:9',
      'upstream:',
      '  allowed_ips: [127.0.0.0/8]',
      '',
    ].join('\n'),
  );
  const gw = spawn(process.env.AIRLOCK_BIN, ['gateway', '--config', path.join(tmp, `${name}.yaml`)], { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.push(gw);
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`gateway ${name}: ${buf}`)), 30000);
    gw.stderr.setEncoding('utf8');
    gw.stderr.on('data', (d) => {
      buf += d;
      if (re.test(buf)) {
        clearTimeout(timer);
        resolve(gw);
      }
    });
  });
}

test('console tunnels: connections up with their gateway version, reveal and rotate the token with confirmation', { skip }, () =>
  explain(async () => {
    await open('#/tunnels', '#tunnel-form');
    await fill('#tunnel-name', `Ledger ${HOSTILE}`);
    await page.click('#tunnel-form button[type=submit]');
    await page.waitForSelector('#connections[data-updated]');
    const tunnelId = decodeURIComponent(/#\/tunnels\/([^/?]+)/.exec(page.url())[1]);
    assert.equal(await page.$eval('#tunnel-title', (e) => e.textContent), `Ledger ${HOSTILE}`);
    assert.match(await page.$eval('#connections-summary', (e) => e.textContent), /^0 connections up\./);
    const tunnel = await (await fetch(`${server.baseURL}/v1/tunnels/${tunnelId}`, { headers: { 'x-api-key': server.apiKey } })).json();

    // reveal: the first click only asks; the second shows the token the API holds
    await page.click('#reveal-token');
    assert.equal(await page.$('#tunnel-token'), null, 'one click reveals nothing');
    await page.click('#reveal-token');
    await page.waitForSelector('#tunnel-token');
    const oldToken = await page.$eval('#tunnel-token', (e) => e.value);
    assert.match(oldToken, /^alk_tnl_/);
    await page.click('#hide-token');
    assert.equal(await page.$('#tunnel-token'), null);
    assert.ok(!(await page.content()).includes(oldToken));

    // a gateway connects with it: the page shows its connections and its version
    const gw = await startGateway('gw1', tunnel, oldToken, /(Registered tunnel connection[^\n]*\n[^]*){4}/);
    await page.reload();
    await page.waitForFunction(() => /^4 connections up; gateway version airlock\/\d/.test(document.querySelector('#connections-summary')?.textContent ?? ''));
    assert.equal((await page.$$('tr[data-connection-id]')).length, 4);
    assert.deepEqual(
      (await page.$$eval('tr[data-connection-id] td:nth-child(3)', (ns) => ns.map((n) => n.textContent))).sort(),
      ['0', '1', '2', '3'],
    );
    const api = await (await fetch(`${server.baseURL}/v1/tunnels/${tunnelId}/connections`, { headers: { 'x-api-key': server.apiKey } })).json();
    assert.equal(api.data.length, 4);
    assert.ok(api.data.every((c) => c.type === 'tunnel_connection' && /^tcon_/.test(c.id) && /^airlock\//.test(c.gateway_version)));
    await shot('tunnel');
    await open('#/tunnels', `tr[data-tunnel-id="${tunnelId}"]`);
    assert.equal(await page.$eval(`tr[data-tunnel-id="${tunnelId}"] .conns`, (e) => e.textContent), '4');
    await shot('tunnels', false);

    // rotate, with a reason: two clicks; a new token, the old one refused for new
    // connections, the gateway already connected stays up
    await open(`#/tunnels/${tunnelId}`, '#rotate-token');
    await fill('#rotate-reason', 'laptop lost');
    await page.click('#rotate-token');
    const still = await (await fetch(`${server.baseURL}/v1/tunnels/${tunnelId}/reveal_token`, { method: 'POST', headers: { 'x-api-key': server.apiKey } })).json();
    assert.equal(still.tunnel_token, oldToken, 'one click rotates nothing');
    await page.click('#rotate-token');
    await page.waitForSelector('#tunnel-token');
    const newToken = await page.$eval('#tunnel-token', (e) => e.value);
    assert.match(newToken, /^alk_tnl_/);
    assert.notEqual(newToken, oldToken);
    const now = await (await fetch(`${server.baseURL}/v1/tunnels/${tunnelId}/reveal_token`, { method: 'POST', headers: { 'x-api-key': server.apiKey } })).json();
    assert.equal(now.tunnel_token, newToken);
    const refused = await startGateway('gw-old', tunnel, oldToken, /edge refused the tunnel token/);
    refused.kill('SIGTERM');
    await page.reload();
    await page.waitForFunction(() => /^4 connections up/.test(document.querySelector('#connections-summary')?.textContent ?? ''));
    assert.equal(gw.exitCode, null);
    // the audit log has the rotation with its reason, as the console's key
    const audit = await (await fetch(`${server.baseURL}/v1/audit_events?action=tunnel.token.rotate`, { headers: { 'x-api-key': server.apiKey } })).json();
    assert.ok(audit.data.some((r) => r.resources.tunnel_id === tunnelId && JSON.stringify(r).includes('laptop lost')), JSON.stringify(audit.data));

    // archive: two clicks; the connections close
    await page.click('#archive-tunnel');
    await page.click('#archive-tunnel');
    await page.waitForFunction(() => !document.querySelector('#token'));
    const gone = await (await fetch(`${server.baseURL}/v1/tunnels/${tunnelId}/connections`, { headers: { 'x-api-key': server.apiKey } })).json();
    assert.equal(gone.data.length, 0);
  }),
);

test('console audit log: filters, paging with the cursors, a record in full, export as JSON lines', { skip }, () =>
  explain(async () => {
    const key = { 'x-api-key': server.apiKey };
    // 60 records of one kind from this test: a tunnel's token revealed 60 times
    const t = await (await fetch(`${server.baseURL}/v1/tunnels`, { method: 'POST', headers: { ...key, 'content-type': 'application/json' }, body: '{}' })).json();
    for (let i = 0; i < 60; i++) await fetch(`${server.baseURL}/v1/tunnels/${t.id}/reveal_token`, { method: 'POST', headers: key });
    const expected = [];
    for (let page = ''; ; ) {
      const r = await (await fetch(`${server.baseURL}/v1/audit_events?action=tunnel.token.reveal&limit=1000&order=asc${page ? `&page=${page}` : ''}`, { headers: key })).json();
      expected.push(...r.data);
      if (!r.next_page) break;
      page = r.next_page;
    }
    assert.ok(expected.length >= 60);

    // unfiltered: the newest first, the console's own sign-in among them
    await open('#/audit', '#audit-filters');
    await page.waitForSelector('tr[data-seq]');
    const seqs = await page.$$eval('tr[data-seq]', (rs) => rs.map((r) => Number(r.dataset.seq)));
    assert.deepEqual(seqs, [...seqs].sort((a, b) => b - a), 'newest first');
    await shot('audit', false);

    // filter by action through the form: the address holds it, every row is that action
    await fill('#audit-action', 'tunnel.token.reveal');
    await page.click('#audit-filters button[type=submit]');
    await page.waitForFunction(() => location.hash.includes('action=tunnel.token.reveal'));
    await page.waitForFunction(() => [...document.querySelectorAll('tr[data-seq] td:nth-child(3)')].every((n) => n.textContent === 'tunnel.token.reveal'));
    const first = await page.$$eval('tr[data-seq]', (rs) => rs.map((r) => Number(r.dataset.seq)));
    assert.equal(first.length, 50);
    const newestFirst = expected.map((r) => r.seq).reverse();
    assert.deepEqual(first, newestFirst.slice(0, 50));
    // the next page with the API's cursor, and back
    await page.click('.pager a[href*="page="]');
    await page.waitForFunction((n) => document.querySelectorAll('tr[data-seq]').length === n, {}, newestFirst.length - 50);
    assert.deepEqual(await page.$$eval('tr[data-seq]', (rs) => rs.map((r) => Number(r.dataset.seq))), newestFirst.slice(50));
    await page.click('.pager a');
    await page.waitForFunction((s) => document.querySelector('tr[data-seq]')?.dataset.seq === String(s), {}, newestFirst[0]);
    // a record opened in full: as stored, hash chain fields included
    await page.click('tr[data-seq] details summary');
    const rec = JSON.parse(await page.$eval('tr[data-seq] details pre', (e) => e.textContent));
    assert.deepEqual(rec, expected.at(-1));
    assert.match(rec.hash, /^[0-9a-f]{64}$/);

    // export: every matching record (more than one page), oldest first, as the API has them
    const dl = mkdtempSync(path.join(tmp, 'download-'));
    const cdp = await page.createCDPSession();
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: dl });
    await page.click('#export');
    await page.waitForSelector('#export-link');
    const file = path.join(dl, await page.$eval('#export-link', (a) => a.getAttribute('download')));
    for (let i = 0; i < 100 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 50));
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines, expected);

    // a time window in the future holds nothing; a hostile filter value stays text
    await open(`#/audit?since=2999-01-01T00:00:00`, '#audit-filters');
    await page.waitForFunction(() => document.querySelector('main').textContent.includes('No records match'));
    await open(`#/audit?session_id=${encodeURIComponent(HOSTILE)}`, '#audit-filters');
    await page.waitForFunction(() => document.querySelector('main').textContent.includes('No records match'));
    assert.equal(await page.$eval('#audit-session', (e) => e.value), HOSTILE);
    assert.equal(await page.$('main img, main script'), null);
    // a bad date is said, not sent
    await open('#/audit?since=yesterday', 'main p.error');
    assert.match(await mainText(), /From: not a date and time/);
  }),
);

test('console session page: a long session lays out its newest 300 events, earlier ones 300 at a time on request, and an older call waiting for a person', { skip }, () =>
  explain(async () => {
    // its own server, with a model that answers every turn
    const mock = await startMockModel({
      turns: [
        { match: 'run the tool', content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo long ago' } }] },
        { match: 'markdown please', content: [{ type: 'text', text: MARKDOWN }] },
        { content: [{ type: 'text', text: 'ok' }] },
      ],
      loop: true,
    });
    const srv = await startServer({ env: { AIRLOCK_MODEL_API_KEY: 'k', AIRLOCK_MODEL_BASE_URL: mock.url } });
    // its own browser context: cookies are per host, not per port, so a sign-in to this
    // server would replace the other pages' session cookie
    const ctx = await browser.createBrowserContext();
    const p2 = await ctx.newPage();
    try {
      const errors = [];
      p2.on('pageerror', (e) => errors.push(String(e)));
      const c = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
      const agent = await c.beta.agents.create({ name: 'long', model: 'claude-test-model' });
      const env = await c.beta.environments.create({ name: 'long', config: { type: 'self_hosted' } });
      const sess = await c.beta.sessions.create({ agent: agent.id, environment_id: env.id, title: 'long' });
      const idle = async () => {
        while ((await c.beta.sessions.retrieve(sess.id)).status !== 'idle') await new Promise((r) => setTimeout(r, 20));
      };
      for (let k = 0; k < 7; k++) {
        await c.beta.sessions.events.send(sess.id, {
          events: Array.from({ length: 100 }, (_, i) => ({ type: 'user.message', content: [{ type: 'text', text: `m${k}.${i}` }] })),
        });
        await idle();
      }
      const all = [];
      for await (const e of c.beta.sessions.events.list(sess.id, { limit: 1000, order: 'asc' })) all.push(e);
      assert.ok(all.length > 700, String(all.length));
      const messages = all.filter((e) => e.type === 'user.message').map((e) => e.content[0].text);

      await p2.setViewport({ width: 1280, height: 900 });
      await p2.goto(`${srv.baseURL}/console/`);
      await p2.waitForSelector('#signin');
      await p2.type('#key', srv.apiKey);
      await p2.click('#signin button[type=submit]');
      await p2.waitForSelector('table.list');
      await p2.goto(`${srv.baseURL}/console/#/sessions/${sess.id}`);
      await p2.waitForSelector('#stream-state[data-state="live"]');
      const shownIds = () => p2.$$eval('li[data-event-id]', (ns) => ns.map((n) => n.dataset.eventId));
      const shownMessages = () => p2.$$eval('li[data-event-type="user.message"] .text', (ns) => ns.map((n) => n.textContent));
      // only events of the last 300 are laid out, in the log's order
      const ids = await shownIds();
      const pos = ids.map((id) => all.findIndex((e) => e.id === id));
      assert.ok(pos.every((p, i) => p >= all.length - 300 && (i === 0 || p > pos[i - 1])), 'the newest 300, in order');
      assert.ok((await shownMessages()).includes('m6.99'));
      assert.ok(!(await shownMessages()).includes('m0.0'));
      // the older events are read after the page is live
      await p2.waitForFunction(
        (t) => document.querySelector('#earlier').textContent === t,
        {},
        `Show ${Math.min(300, all.length - 300)} earlier events (${all.length - 300} not shown)`,
      );
      assert.match(await p2.$eval('#session-status', (e) => e.textContent), /idle/);
      // earlier events, 300 at a time, above what is shown, until the first
      const top = await p2.$eval('li[data-event-id]', (n) => n.dataset.eventId);
      await p2.focus('#earlier');
      await p2.keyboard.press('Enter');
      await p2.waitForFunction((n) => document.querySelectorAll('li[data-event-id]').length > n, {}, ids.length);
      // what was on screen stays there: the old first event is still in view
      assert.ok(await p2.$eval(`li[data-event-id="${top}"]`, (n) => n.getBoundingClientRect().bottom > 0));
      while (!(await p2.$eval('#earlier', (b) => b.hidden))) await p2.click('#earlier');
      assert.deepEqual(await shownMessages(), messages, 'every message once, in order');
      const after = await shownIds();
      assert.equal(new Set(after).size, after.length);
      assert.match(await p2.$eval('#session-status', (e) => e.textContent), /idle/, 'older status events do not change the status');
      // the session's tokens as the API sums them, also after older usage events were shown
      const u = (await c.beta.sessions.retrieve(sess.id)).usage;
      assert.ok(u.output_tokens > 0, JSON.stringify(u));
      assert.equal(
        await p2.$eval('#session-usage', (e) => e.textContent),
        `${u.input_tokens.toLocaleString('en-US')} in · ${u.output_tokens.toLocaleString('en-US')} out${u.cache_read_input_tokens ? ` · ${u.cache_read_input_tokens.toLocaleString('en-US')} read from cache` : ''}`,
      );
      // and live events still arrive at the end
      await c.beta.sessions.events.send(sess.id, { events: [{ type: 'user.message', content: [{ type: 'text', text: 'the newest' }] }] });
      await p2.waitForFunction(() => [...document.querySelectorAll('li[data-event-type="user.message"] .text')].at(-1)?.textContent === 'the newest');

      // a call still waiting for a person, 400 events back, is brought into view with
      // its Approve button once the older events are read
      const asker = await c.beta.agents.create({
        name: 'asker',
        model: 'claude-test-model',
        tools: [{ type: 'agent_toolset_20260401', default_config: { permission_policy: { type: 'always_ask' } } }],
      });
      const waiting = await c.beta.sessions.create({ agent: asker.id, environment_id: env.id, title: 'waiting' });
      await c.beta.sessions.events.send(waiting.id, { events: [{ type: 'user.message', content: [{ type: 'text', text: 'run the tool' }] }] });
      let use;
      while (!use) {
        for await (const e of c.beta.sessions.events.list(waiting.id, { limit: 100 })) if (e.type === 'agent.tool_use') use = e;
        if (!use) await new Promise((r) => setTimeout(r, 20));
      }
      for (let k = 0; k < 4; k++)
        await c.beta.sessions.events.send(waiting.id, {
          events: Array.from({ length: 100 }, (_, i) => ({ type: 'user.message', content: [{ type: 'text', text: `w${k}.${i}` }] })),
        });
      await p2.goto('about:blank');
      await p2.goto(`${srv.baseURL}/console/#/sessions/${waiting.id}`);
      await p2.waitForSelector('#stream-state[data-state="live"]');
      const approve = await p2.waitForSelector(`button[data-action="approve"][data-tool-use-id="${use.id}"]`);
      assert.match(await p2.$eval(`li[data-event-id="${use.id}"]`, (n) => n.textContent), /echo long ago/);
      // everything after it is shown too, in order, once
      const w = await shownMessages();
      assert.deepEqual(w.slice(-400), Array.from({ length: 400 }, (_, i) => `w${Math.floor(i / 100)}.${i % 100}`));
      await approve.click();
      await p2.waitForSelector(`li[data-event-id="${use.id}"] [data-confirmation="allow"]`);

      // an agent's Markdown: its structure shown, its tricks inert
      const md = await c.beta.sessions.create({ agent: agent.id, environment_id: env.id, title: 'markdown' });
      await c.beta.sessions.events.send(md.id, { events: [{ type: 'user.message', content: [{ type: 'text', text: 'markdown please' }] }] });
      await p2.goto('about:blank');
      await p2.goto(`${srv.baseURL}/console/#/sessions/${md.id}`);
      const card = 'li[data-event-type="agent.message"] .md';
      await p2.waitForSelector(card);
      const shape = await p2.$eval(card, (n) => ({
        tags: [...n.querySelectorAll('*')].map((x) => x.tagName.toLowerCase()),
        heading: n.querySelector('.md-h1')?.textContent,
        strong: [...n.querySelectorAll('p:not(.md-h) > strong')].map((x) => x.textContent),
        em: [...n.querySelectorAll('em')].map((x) => x.textContent),
        code: [...n.querySelectorAll('p > code')].map((x) => x.textContent),
        items: [...n.querySelectorAll('ul > li')].map((x) => x.textContent),
        ordered: [...n.querySelectorAll('ol > li')].map((x) => x.textContent),
        fenced: n.querySelector('pre code')?.textContent,
        quote: n.querySelector('blockquote')?.textContent,
        attrs: [...n.querySelectorAll('*')].flatMap((x) => [...x.attributes].map((a) => a.name)).filter((a) => a !== 'class'),
        text: n.textContent,
      }));
      await p2.screenshot({ path: path.join(SHOTS, 'session-markdown.png') });
      // its model call: one quiet line with how long it took and its tokens, as the API has them
      const mdEvents = [];
      for await (const e of c.beta.sessions.events.list(md.id, { limit: 100 })) mdEvents.push(e);
      const end = mdEvents.find((e) => e.type === 'span.model_request_end');
      assert.match(
        await p2.$eval(`li[data-event-id="${end.id}"]`, (n) => n.textContent),
        new RegExp(`^Model call · \\d+\\.\\d s · ${end.model_usage.input_tokens} in · ${end.model_usage.output_tokens} out$`),
      );
      // a session that is not archived shows no "archived" badge (.badge's display once
      // beat the hidden attribute)
      assert.equal(await p2.$eval('#archived', (n) => getComputedStyle(n).display), 'none');
      assert.equal(shape.heading, 'Report');
      assert.deepEqual(shape.strong, ['done']);
      assert.deepEqual(shape.em, ['mostly']);
      assert.deepEqual(shape.code, ['make test']);
      assert.deepEqual(shape.items, ['first', 'second with my_var_name']);
      assert.deepEqual(shape.ordered, ['one', 'two']);
      assert.equal(shape.fenced, '<script>window.__pwned=6</script>\n<img src=x onerror="window.__pwned=7">');
      assert.equal(shape.quote, 'quoted <b>not bold</b>');
      assert.deepEqual(shape.attrs, [], 'no attribute but class on anything made from Markdown');
      assert.ok(!shape.tags.some((t) => ['a', 'img', 'script', 'svg', 'iframe', 'b'].includes(t)), shape.tags.join());
      assert.ok(shape.text.includes('javascript:window.__pwned=8'), 'a link is its text and address');
      assert.ok(shape.text.includes('http://evil.example/x.png'));
      assert.equal(await p2.evaluate(() => window.__pwned), undefined);
      // and whatever the text, only those elements and no other attribute come out
      const bad = await p2.evaluate(async () => {
        const { markdown } = await import('/console/markdown.js');
        const bits = ['*', '**', '`', '```', '\n', '\n\n', '# ', '- ', '1. ', '> ', '[', ']', '(', ')', '![', '<script>', '<img onerror=x>', 'javascript:', '_', ' ', 'a', 'é', '~~~'];
        let seed = 42;
        const rnd = (n) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
        const allowed = new Set(['P', 'STRONG', 'EM', 'CODE', 'PRE', 'UL', 'OL', 'LI', 'BLOCKQUOTE', 'SPAN']);
        for (let i = 0; i < 3000; i++) {
          let t = '';
          for (let k = rnd(40); k > 0; k--) t += bits[rnd(bits.length)];
          const box = document.createElement('div');
          box.append(markdown(t));
          for (const x of box.querySelectorAll('*'))
            if (!allowed.has(x.tagName) || [...x.attributes].some((a) => a.name !== 'class' && !(x.tagName === 'OL' && a.name === 'start')))
              return { t, html: box.innerHTML };
        }
        return null;
      });
      assert.equal(bad, null, JSON.stringify(bad));
      assert.equal(await p2.evaluate(() => window.__pwned), undefined);
      assert.deepEqual(errors, []);
    } finally {
      await ctx.close();
      await srv.stop();
      await mock.stop();
    }
  }),
);

test('console sessions list: filtered by agent and by when they were created', { skip }, () =>
  explain(async () => {
    const env = await client.beta.environments.create({ name: 'filters', config: { type: 'self_hosted' } });
    const x = await client.beta.agents.create({ name: `Filter X ${HOSTILE}`, model: 'claude-test-model' });
    const y = await client.beta.agents.create({ name: 'Filter Y', model: 'claude-test-model' });
    const xs = [];
    for (const title of ['x one', 'x two']) xs.push((await client.beta.sessions.create({ agent: x.id, environment_id: env.id, title })).id);
    const ys = (await client.beta.sessions.create({ agent: y.id, environment_id: env.id, title: 'y one' })).id;
    await open('#/sessions', '#filter-agent');
    // the agent's name is an option's text, not markup
    assert.equal(await page.$eval(`#filter-agent option[value="${x.id}"]`, (o) => o.textContent), `Filter X ${HOSTILE}`);
    await page.select('#filter-agent', x.id);
    await page.waitForFunction((id) => location.hash.includes(`agent=${id}`) && document.querySelectorAll('tr[data-session-id]').length === 2, {}, x.id);
    assert.deepEqual((await page.$$eval('tr[data-session-id]', (rs) => rs.map((r) => r.dataset.sessionId))).sort(), [...xs].sort());
    assert.equal(await page.$(`tr[data-session-id="${ys}"]`), null);
    await shot('sessions-filtered', false);
    // a window that ends before they were made holds none of them; one around now, all
    await open(`#/sessions?agent=${x.id}&until=2000-01-01T00:00:00`, '#filter-agent');
    await page.waitForFunction(() => document.querySelector('main').textContent.includes('No sessions here'));
    await open(`#/sessions?agent=${x.id}&since=2000-01-01T00:00:00&until=2999-01-01T00:00:00`, 'tr[data-session-id]');
    assert.equal((await page.$$('tr[data-session-id]')).length, 2);
    assert.match(await page.$eval('#filter-since', (e) => e.value), /^2000-01-01T00:00/);
    // a bad date is said
    await open('#/sessions?since=soon', 'main p.error');
    assert.match(await mainText(), /Created from: not a date and time/);
  }),
);
