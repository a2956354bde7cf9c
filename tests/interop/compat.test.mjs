// Walks every managed-agents method of the pinned official SDK against a real `airlock
// server` and checks docs/compat.md, the coverage manifest: method, route, and whether
// airlock serves it (with documented differences) or not (and why). The test fails when
// the manifest is stale, when a method it lists as served answers 404 "no route", when
// a method is not served without a reason, or when a reason names a method the SDK no
// longer has. Regenerate after a change: AIRLOCK_COMPAT_WRITE=1 meson test interop-compat.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { startServer } from './lib/server.mjs';

const SDK_VERSION = JSON.parse(readFileSync(new URL('./node_modules/@anthropic-ai/sdk/package.json', import.meta.url), 'utf8')).version;
const MANIFEST = path.join(process.env.AIRLOCK_SRCDIR ?? path.resolve('../..'), 'docs', 'compat.md');

// The managed-agents namespaces of client.beta (the Messages API, models, webhooks, user
// profiles, compliance and organization administration are other products).
const NAMESPACES = ['agents', 'environments', 'sessions', 'deployments', 'deploymentRuns', 'vaults',
  'memoryStores', 'files', 'skills', 'tunnels', 'dreams'];
// Client-side helpers that make no request of their own.
const HELPERS = new Set(['beta.environments.work.poller', 'beta.environments.work.worker', 'beta.sessions.events.toolRunner']);

// What the manifest says beyond served / not served. "differs": served, with the page
// that documents how; "not served": why.
const NOTES = {
  'beta.files.upload': ['differs', 'served by airlock, hosted-only in the reference: files are downloadable, `expires_in_seconds` refused ([files](server/files.md))'],
  'beta.files.list': ['differs', 'hosted-only in the reference; `scope_id` matches nothing until sessions write files ([files](server/files.md))'],
  'beta.files.retrieveMetadata': ['differs', 'hosted-only in the reference ([files](server/files.md))'],
  'beta.files.download': ['differs', 'hosted-only in the reference; every uploaded file is downloadable ([files](server/files.md))'],
  'beta.files.delete': ['differs', 'hosted-only in the reference ([files](server/files.md))'],
  'beta.sessions.resources.add': ['differs', 'only `file`; `github_repository` refused until worker egress exists; `memory_store` at session creation ([resources](server/resources.md))'],
  'beta.sessions.resources.update': ['differs', 'only `github_repository` takes a token, and those are refused: always 400 or 404 ([resources](server/resources.md))'],
  'beta.skills.create': ['differs', 'a bundle of individual files under one top directory; archives are not accepted; executable bits are not kept ([skills](server/skills.md))'],
  'beta.skills.versions.download': ['differs', 'always a ustar archive ([skills](server/skills.md))'],
  'beta.environments.create': ['differs', '`config.type` must be `self_hosted` (the reference self-hosted server does the same)'],
  'beta.vaults.credentials.mcpOAuthValidate': ['differs', 'self-hosted: `mcp_oauth` credentials are refused, so there is nothing to validate ([vaults](server/vaults.md))'],
  'beta.sessions.threads.retrieve': ['not served', 'not built yet: the one primary thread every single-agent session has in the reference is not modelled; multi-agent agents are refused'],
  'beta.sessions.threads.list': ['not served', 'not built yet (threads, see above)'],
  'beta.sessions.threads.archive': ['not served', 'not built yet (threads, see above)'],
  'beta.sessions.threads.events.list': ['not served', 'not built yet (threads, see above); the session\'s own events are served'],
  'beta.sessions.threads.events.stream': ['not served', 'not built yet (threads, see above); the session\'s own stream is served'],
  'beta.deployments.create': ['not served', 'hosted-only: a self-hosted server has no deployments routes ([references](references.md) "API", `self-hosted`)'],
  'beta.deployments.retrieve': ['not served', 'deployments are hosted-only'],
  'beta.deployments.update': ['not served', 'deployments are hosted-only'],
  'beta.deployments.list': ['not served', 'deployments are hosted-only'],
  'beta.deployments.archive': ['not served', 'deployments are hosted-only'],
  'beta.deployments.pause': ['not served', 'deployments are hosted-only'],
  'beta.deployments.run': ['not served', 'deployments are hosted-only'],
  'beta.deployments.unpause': ['not served', 'deployments are hosted-only'],
  'beta.deploymentRuns.retrieve': ['not served', 'deployment runs are hosted-only'],
  'beta.deploymentRuns.list': ['not served', 'deployment runs are hosted-only'],
  'beta.dreams.create': ['not served', 'hosted-only: a self-hosted server has no dreams routes ([references](references.md) "API", `self-hosted`)'],
  'beta.dreams.retrieve': ['not served', 'dreams are hosted-only'],
  'beta.dreams.list': ['not served', 'dreams are hosted-only'],
  'beta.dreams.archive': ['not served', 'dreams are hosted-only'],
  'beta.dreams.cancel': ['not served', 'dreams are hosted-only'],
};

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.stop(); });

const isResource = (v) => v && typeof v === 'object' && '_client' in v;

// Every method of a resource and its sub-resources, with its declared parameter names.
function methodsOf(res, name, out) {
  for (const m of Object.getOwnPropertyNames(Object.getPrototypeOf(res))) {
    if (m === 'constructor' || m.startsWith('_') || typeof res[m] !== 'function') continue;
    const full = `${name}.${m}`;
    if (HELPERS.has(full)) continue;
    const sig = /^(?:async\s+)?[\w$]+\s*\(([^)]*)\)/.exec(res[m].toString());
    const args = (sig ? sig[1] : '').split(',').map((a) => a.split('=')[0].trim()).filter(Boolean);
    out.push({ name: full, res, method: m, args });
  }
  for (const k of Object.keys(res))
    if (k !== '_client' && isResource(res[k])) methodsOf(res[k], `${name}.${k}`, out);
  return out;
}

// Parameter objects that name each parent id the SDK reads for the path, and nothing
// else: the request carries no body a route would act on.
const paramsProxy = () => new Proxy({}, {
  get: (_, key) => (typeof key === 'string' && (key.endsWith('_id') || key === 'version') ? `__${key}__` : undefined),
  ownKeys: () => [],
  getOwnPropertyDescriptor: () => undefined,
});

function argsFor(args) {
  return args.map((a) => (a === 'options' ? { maxRetries: 0, timeout: 5000 } : ['params', 'query', 'body'].includes(a) ? paramsProxy() : `__${a}__`));
}

test('every managed-agents method of the pinned SDK is in docs/compat.md, as served as it says', async () => {
  let last = null;
  const client = new Anthropic({
    baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0,
    fetch: (url, init) => { last = { method: init?.method ?? 'GET', url: String(url) }; return fetch(url, init); },
  });
  const methods = [];
  for (const ns of NAMESPACES) {
    assert.ok(isResource(client.beta[ns]), `the SDK has no client.beta.${ns}`);
    methodsOf(client.beta[ns], `beta.${ns}`, methods);
  }
  const rows = [];
  for (const m of methods) {
    last = null;
    let status = 200, message = '';
    try {
      const r = await m.res[m.method](...argsFor(m.args));
      if (r && typeof r.controller?.abort === 'function') r.controller.abort(); // a stream that opened
    } catch (e) {
      status = e.status ?? 0;
      message = String(e.message ?? e);
    }
    assert.ok(last, `${m.name} made no request (${message})`);
    const u = new URL(last.url);
    // path parameters named as the API reference does: {agent_id}, {work_id}, {version}
    const snake = (n) => n.replace(/ID$/, 'Id').replace(/[A-Z]/g, (ch) => `_${ch.toLowerCase()}`);
    const route = `${last.method} ${decodeURIComponent(u.pathname).replace(/__([A-Za-z_]+)__/g, (_, n) => `{${snake(n)}}`)}`;
    const noRoute = status === 404 && /no route/.test(message);
    const note = NOTES[m.name];
    let verdict;
    if (noRoute) {
      assert.ok(note && note[0] === 'not served', `${m.name} (${route}) answers 404 no route but the manifest has no reason for it`);
      verdict = 'not served';
    } else {
      assert.ok(!note || note[0] !== 'not served', `${m.name} (${route}) is served (${status}) but listed as not served`);
      verdict = note ? 'served with differences' : 'served';
    }
    rows.push({ name: m.name.replace(/^beta\./, ''), route, verdict, note: note ? note[1] : '' });
  }
  for (const k of Object.keys(NOTES))
    assert.ok(methods.some((m) => m.name === k), `NOTES names ${k}, which the SDK does not have`);

  const count = (v) => rows.filter((r) => r.verdict === v).length;
  const text = [
    '# SDK compatibility manifest',
    '',
    `Every managed-agents method of the pinned official SDK (\`@anthropic-ai/sdk\` ${SDK_VERSION}),`,
    'called against airlock by `tests/interop/compat.test.mjs`, which fails when this page is',
    'stale or a method listed as served answers `404 no route`. Do not edit by hand: change the',
    'test\'s notes and run `AIRLOCK_COMPAT_WRITE=1 meson test -C build interop-compat`.',
    '',
    `${rows.length} methods: ${count('served')} served, ${count('served with differences')} served with documented differences, ${count('not served')} not served.`,
    '',
    '| SDK method (`client.beta.…`) | Route | Status | Notes |',
    '|---|---|---|---|',
    ...rows.map((r) => `| \`${r.name}\` | \`${r.route}\` | ${r.verdict} | ${r.note} |`),
    '',
  ].join('\n');
  if (process.env.AIRLOCK_COMPAT_WRITE === '1') writeFileSync(MANIFEST, text);
  let current = '';
  try { current = readFileSync(MANIFEST, 'utf8'); } catch { /* missing: stale */ }
  assert.equal(current, text, 'docs/compat.md is stale: AIRLOCK_COMPAT_WRITE=1 meson test -C build interop-compat');
});
