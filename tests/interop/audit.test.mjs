// The audit log of a running server (issue 12 item 5): users from a real OpenID provider
// (npm oidc-provider) and the official SDK drive a failed authentication, a key creation,
// sessions whose model (`airlock mock-model`) calls a tool the policy denies and one it
// allows, a role denial and policy reloads; GET /v1/audit_events then shows each as a
// record (filters, paging, admins only), `airlock audit verify` accepts the file and names
// the first bad record of an edited, shortened or reordered copy, `airlock audit export`
// copies it, and no secret used on the way appears in it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { collect } from './lib/events.mjs';
import { startPolicyRig } from './lib/policy_rig.mjs';

const BIN = process.env.AIRLOCK_BIN;
const BOB_INPUT = { command: 'echo bob-input-SECRET-5f1c' };
const ALICE_INPUT = { command: 'echo alice-input-SECRET-9a7e' };
const WRONG_KEY = 'alk_srv_wrong-key-SECRET-0d2b';

const POLICY = (extra = '') => `default: deny
roles:
  admin: [platform-admins]
  developer: [engineers]
rules:
  - id: auditors-shell
    effect: allow
    groups: [auditors]
    tools: [bash]
  - id: no-intern-shell
    effect: deny
    groups: [interns]
    tools: [bash]
  - id: writes-need-a-yes
    effect: ask
    groups: [auditors]
    tools: [write]
${extra}`;

const SCRIPT = [
  { match: 'bob-go', content: [{ type: 'tool_use', name: 'bash', input: BOB_INPUT }] },
  { match: 'denied by policy rule no-intern-shell', content: [{ type: 'text', text: 'understood' }] },
  { match: 'alice-go', content: [{ type: 'tool_use', name: 'bash', input: ALICE_INPUT }] },
  { match: 'alice-result', content: [{ type: 'text', text: 'done' }] },
  { match: 'alice-write', content: [{ type: 'tool_use', name: 'write', input: { file_path: '/workspace/r.txt', content: 'x' } }] },
];

let rig;
let idp;
let srv;
let dir;
let policyFile;
let admin;
let agent;
let env;
let envKey;
let cliKey;
let writePolicy;
let logSays;
let say;
const VAULT_TOKENS = ['vault-token-SECRET-1f3a', 'vault-token-SECRET-2b4c'];
const tokens = {};
const sessions = {};

// Keeps each user's token: no record may carry one.
const userClient = async (name) => {
  tokens[name] = await idp.token(name);
  return new Anthropic({ baseURL: srv.baseURL, apiKey: null, authToken: tokens[name], maxRetries: 0 });
};
const auditFile = () => path.join(srv.dataDir, 'audit.jsonl');
const lines = () => readFileSync(auditFile(), 'utf8').split('\n').filter((l) => l !== '');
async function audit(query = '', headers = { 'x-api-key': srv.apiKey }) {
  const r = await fetch(`${srv.baseURL}/v1/audit_events${query ? `?${query}` : ''}`, { headers });
  return { status: r.status, body: await r.json() };
}
async function all(query) {
  const { status, body } = await audit(`${query}&limit=1000`);
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.next_page, null);
  return body.data;
}
const sha256 = (s) => createHash('sha256').update(s).digest('hex');

before(async () => {
  rig = await startPolicyRig({
    name: 'audit', policy: POLICY(), script: SCRIPT,
    keepData: true, // the data directory outlasts srv.stop(): the last checkpoint
    env: {
      AIRLOCK_AGENT_IDENTITY_ISSUER: 'https://agents.bank.test', // signs the checkpoints
      AIRLOCK_MODEL_API_KEY: 'mock-model-key-SECRET-77aa',
    },
  });
  ({ idp, srv, dir, policyFile, admin, agent, env, writePolicy, logSays, say } = rig);
});

after(async () => {
  await rig?.stop();
});

test('a failed authentication, a key, tool calls and policy reloads each leave a record', async () => {
  const bad = await fetch(`${srv.baseURL}/v1/agents`, { headers: { 'x-api-key': WRONG_KEY } });
  assert.equal(bad.status, 401);

  const kr = await fetch(`${srv.baseURL}/v1/environments/${env.id}/keys`, {
    method: 'POST', headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json' }, body: '{}',
  });
  assert.equal(kr.status, 200);
  envKey = await kr.json();

  // bob (interns): the model calls bash anyway and the policy denies it
  const bob = await userClient('bob');
  sessions.bob = await bob.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  let ev = collect(await bob.beta.sessions.events.stream(sessions.bob.id));
  await say(bob, sessions.bob.id, 'bob-go');
  const denied = await ev.waitFor((e) => e.type === 'agent.tool_use', 0, 'agent.tool_use');
  assert.equal(denied.evaluation.policy_rule, 'no-intern-shell');
  await ev.waitFor((e) => e.type === 'agent.message', 0, 'the answer after the denial');
  ev.close();

  // alice (auditors): allowed, handed on for a worker
  const alice = await userClient('alice');
  sessions.alice = await alice.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  ev = collect(await alice.beta.sessions.events.stream(sessions.alice.id));
  await say(alice, sessions.alice.id, 'alice-go');
  const allowed = await ev.waitFor((e) => e.type === 'agent.tool_use', 0, 'agent.tool_use');
  assert.equal(allowed.evaluated_permission, 'allow');
  // its result, sent with the API key as a worker would
  await admin.beta.sessions.events.send(sessions.alice.id, {
    events: [{ type: 'user.tool_result', tool_use_id: allowed.id, content: [{ type: 'text', text: 'alice-result' }] }],
  });
  await ev.waitFor((e) => e.type === 'agent.message', 0, 'the answer after the result');
  ev.close();

  // an ask rule: the write waits for alice's yes
  sessions.write = await alice.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  ev = collect(await alice.beta.sessions.events.stream(sessions.write.id));
  await say(alice, sessions.write.id, 'alice-write');
  const ask = await ev.waitFor((e) => e.type === 'agent.tool_use', 0, 'agent.tool_use');
  assert.equal(ask.evaluated_permission, 'ask');
  await ev.waitFor((e) => e.type === 'session.status_idle' && e.stop_reason?.type === 'requires_action', 0, 'requires_action');
  await alice.beta.sessions.events.send(sessions.write.id, {
    events: [{ type: 'user.tool_confirmation', tool_use_id: ask.id, result: 'allow' }],
  });
  ev.close();

  // a good reload, then a refused file (the last good policy stays), then back
  writePolicy(POLICY('  - id: extra\n    effect: allow\n    users: [erin]\n    tools: [read]\n'));
  await logSays(/policy loaded.*rules=4/);
  writePolicy('default: deny\nrules:\n  - id: x\n    effect: maybe\n');
  await logSays(/policy file refused: keeping the last good policy/);
  writePolicy(POLICY());
  await logSays(/policy loaded.*rules=3.*trigger="?file changed/);

  // auth.fail: what was presented and why, never the value
  const [fail] = await all('action=auth.fail');
  assert.equal(fail.decision, 'deny');
  assert.equal(fail.outcome, '401');
  assert.equal(fail.resources.route, '/v1/agents');
  assert.match(fail.resources.reason, /no such key/);
  assert.equal(fail.principal.sub, null);

  const [key] = await all('action=key.create');
  assert.equal(key.resources.key_id, envKey.id);
  assert.equal(key.resources.environment_id, env.id);
  assert.equal(key.principal.sub, 'apikey:AIRLOCK_API_KEY');

  const created = await all('action=session.create');
  assert.deepEqual(created.map((r) => r.principal.sub).sort(), ['alice', 'alice', 'bob']);
  const bobCreate = created.find((r) => r.principal.sub === 'bob');
  assert.equal(bobCreate.principal.iss, idp.issuer);
  assert.deepEqual(bobCreate.principal.groups, ['interns']);
  assert.equal(bobCreate.resources.session_id, sessions.bob.id);

  const [bobCall] = await all(`action=tool.call&session_id=${sessions.bob.id}`);
  assert.equal(bobCall.decision, 'deny');
  assert.equal(bobCall.rule, 'no-intern-shell');
  assert.equal(bobCall.outcome, 'denied');
  assert.equal(bobCall.resources.tool, 'bash');
  assert.equal(bobCall.resources.tool_use_id, denied.id);
  assert.equal(bobCall.principal.sub, 'bob');
  assert.equal(bobCall.args_sha256, sha256(JSON.stringify(BOB_INPUT)));

  const [aliceCall] = await all(`action=tool.call&session_id=${sessions.alice.id}`);
  assert.equal(aliceCall.decision, 'allow');
  assert.equal(aliceCall.rule, 'auditors-shell');
  assert.equal(aliceCall.outcome, 'dispatched');
  assert.equal(aliceCall.principal.sub, 'alice');

  const [result] = await all(`action=tool.result&session_id=${sessions.alice.id}`);
  assert.equal(result.resources.tool_use_id, allowed.id);
  assert.equal(result.outcome, 'ok');
  assert.equal(result.principal.sub, 'apikey:AIRLOCK_API_KEY');

  const [askCall] = await all(`action=tool.call&session_id=${sessions.write.id}`);
  assert.deepEqual([askCall.decision, askCall.rule, askCall.outcome], ['ask', 'writes-need-a-yes', 'awaiting_confirmation']);
  const [yes] = await all(`action=tool.confirm&session_id=${sessions.write.id}`);
  assert.deepEqual([yes.decision, yes.principal.sub, yes.resources.tool_use_id], ['allow', 'alice', ask.id]);

  const reloads = await all('action=policy.reload&order=asc');
  assert.deepEqual(reloads.map((r) => [r.outcome, r.resources.trigger]),
    [['ok', 'start'], ['ok', 'file changed'], ['refused', 'file changed'], ['ok', 'file changed']]);
  assert.match(reloads[2].resources.error, /policy\.yaml:4/);
  assert.equal(reloads[1].resources.file, policyFile);
});

test('keys made and revoked with airlock keys while the server runs reach its log', async () => {
  const made = spawnSync(BIN, ['keys', 'create', '--environment', env.id, '--data-dir', srv.dataDir], { encoding: 'utf8', env: srv.cliEnv });
  assert.equal(made.status, 0, made.stderr);
  cliKey = made.stdout.trim();
  const id = /key (envkey_\S+)/.exec(made.stderr)[1];
  const gone = spawnSync(BIN, ['keys', 'revoke', id, '--data-dir', srv.dataDir], { encoding: 'utf8', env: srv.cliEnv });
  assert.equal(gone.status, 0, gone.stderr);
  let recs = [];
  for (let i = 0; i < 100 && recs.length < 2; i++) {
    await new Promise((r) => setTimeout(r, 50));
    recs = (await all('order=asc')).filter((r) => r.resources.key_id === id);
  }
  assert.deepEqual(recs.map((r) => r.action), ['key.create', 'key.revoke']);
  for (const r of recs) {
    assert.match(r.principal.sub, /^cli:/);
    assert.equal(r.resources.via, 'outbox');
  }
  assert.equal(recs[0].resources.environment_id, env.id);
  // the revoked key is refused, and that refusal names it
  const r = await fetch(`${srv.baseURL}/v1/environments/${env.id}/work`, { headers: { 'x-api-key': cliKey } });
  assert.equal(r.status, 401);
  const [fail] = (await all('action=auth.fail')).filter((x) => x.resources.key_id === id);
  assert.match(fail.resources.reason, /revoked/);
});

test('vault credentials: created, replaced, archived, deleted; never their token', async () => {
  const v = await admin.beta.vaults.create({ display_name: 'audit' });
  const c = await admin.beta.vaults.credentials.create(v.id, {
    auth: { type: 'static_bearer', mcp_server_url: 'https://mcp.bank.test/mcp', token: VAULT_TOKENS[0] },
  });
  await admin.beta.vaults.credentials.update(c.id, { vault_id: v.id, auth: { type: 'static_bearer', token: VAULT_TOKENS[1] } });
  await admin.beta.vaults.credentials.archive(c.id, { vault_id: v.id });
  await admin.beta.vaults.credentials.delete(c.id, { vault_id: v.id });
  await admin.beta.vaults.archive(v.id);
  const recs = (await all('order=asc')).filter((r) => r.resources.vault_id === v.id);
  assert.deepEqual(recs.map((r) => r.action), ['vault.credential.create', 'vault.credential.update',
    'vault.credential.archive', 'vault.credential.delete', 'vault.archive']);
  assert.ok(recs.slice(0, 4).every((r) => r.resources.credential_id === c.id));
  assert.equal(recs[1].resources.secret_replaced, true);
});

test('GET /v1/audit_events: administrators only; the denial of anyone else is itself recorded', async () => {
  for (const name of ['bob', 'erin']) {
    const r = await audit('', { authorization: `Bearer ${await idp.token(name)}` });
    assert.equal(r.status, 403, name);
    assert.equal(r.body.error.type, 'permission_error');
  }
  const pat = await audit('limit=1', { authorization: `Bearer ${await idp.token('pat')}` });
  assert.equal(pat.status, 200);
  assert.equal(pat.body.data.length, 1);
  const denials = await all('action=auth.denied&principal=erin');
  assert.equal(denials.length, 1);
  assert.equal(denials[0].resources.route, '/v1/audit_events');
  assert.equal(denials[0].resources.role, 'developer');
  assert.equal(denials[0].outcome, '403');
});

test('filters and paging', async () => {
  const total = lines().length;
  // newest first by default; pages of 3 cover the log exactly once
  const seen = [];
  let page = '';
  for (let i = 0; i < 1000; i++) {
    const { status, body } = await audit(`limit=3${page ? `&page=${encodeURIComponent(page)}` : ''}`);
    assert.equal(status, 200);
    seen.push(...body.data.map((r) => r.seq));
    if (body.next_page === null) break;
    page = body.next_page;
  }
  assert.equal(seen.length, total, 'every record paged once');
  const want = [...Array(seen.length).keys()].map((k) => seen[0] - k);
  assert.deepEqual(seen, want);

  const bobs = await all('principal=bob');
  assert.ok(bobs.length >= 3); // session.create, tool.call, auth.denied
  assert.ok(bobs.every((r) => r.principal.sub === 'bob'));
  const inSession = await all(`session_id=${sessions.bob.id}`);
  assert.deepEqual(inSession.map((r) => r.action).sort(), ['session.create', 'tool.call']);

  const now = new Date();
  const future = new Date(now.getTime() + 3600e3).toISOString();
  const past = new Date(now.getTime() - 3600e3).toISOString();
  assert.equal((await all(`created_at[gte]=${future}`)).length, 0);
  assert.equal((await all(`created_at[lte]=${past}`)).length, 0);
  assert.ok((await all(`created_at[gte]=${past}&created_at[lte]=${future}`)).length >= total);
  const bad = await audit('created_at[gte]=yesterday');
  assert.equal(bad.status, 400);
  assert.equal((await audit('page=not-a-cursor')).status, 400);
});

test('airlock audit verify accepts the log and names the first bad record of a tampered copy', () => {
  const ok = spawnSync(BIN, ['audit', 'verify', auditFile()], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /ok: \d+ records/);

  const orig = lines();
  assert.ok(orig.length >= 6);
  const check = (name, edited, re) => {
    const f = path.join(dir, `${name}.jsonl`);
    writeFileSync(f, edited.join('\n') + '\n');
    const r = spawnSync(BIN, ['audit', 'verify', f], { encoding: 'utf8' });
    assert.equal(r.status, 1, `${name}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, re, name);
  };
  const edited = [...orig];
  const rec = JSON.parse(edited[2]);
  rec.outcome = 'ok-but-edited';
  edited[2] = JSON.stringify(rec);
  check('edited', edited, /:3: seq 3: hash does not match/);
  check('deleted', orig.filter((_, i) => i !== 2), /:3: seq 4: expected seq 3/);
  check('reordered', [...orig.slice(0, 2), orig[3], orig[2], ...orig.slice(4)], /:3: seq 4: expected seq 3/);
  check('inserted', [...orig.slice(0, 3), orig[1], ...orig.slice(3)], /:4: seq 2: expected seq 4/);

  // export: the verified copy, or the tail from a time on with the anchor to verify it
  const out = path.join(dir, 'export.jsonl');
  execFileSync(BIN, ['audit', 'export', '--out', out, auditFile()], { stdio: 'pipe' });
  assert.equal(readFileSync(out, 'utf8'), readFileSync(auditFile(), 'utf8'));
  const since = JSON.parse(orig[3]).time;
  const tail = spawnSync(BIN, ['audit', 'export', '--since', since, auditFile()], { encoding: 'utf8' });
  assert.equal(tail.status, 0, tail.stderr);
  const first = JSON.parse(tail.stdout.split('\n')[0]);
  assert.ok(first.seq <= 4 && Date.parse(first.time) >= Date.parse(since));
  const anchor = /--anchor (\d+:[0-9a-f]{64})/.exec(tail.stderr)[1];
  const tf = path.join(dir, 'tail.jsonl');
  writeFileSync(tf, tail.stdout);
  const vt = spawnSync(BIN, ['audit', 'verify', '--anchor', anchor, tf], { encoding: 'utf8' });
  assert.equal(vt.status, 0, vt.stderr);
  const badExport = spawnSync(BIN, ['audit', 'export', path.join(dir, 'edited.jsonl')], { encoding: 'utf8' });
  assert.equal(badExport.status, 1);
  assert.match(badExport.stderr, /:3: seq 3: hash does not match/);
});

test('no secret reaches the audit log', () => {
  const text = readFileSync(auditFile(), 'utf8');
  const secrets = {
    'server API key': srv.apiKey,
    'the refused key': WRONG_KEY,
    'the issued environment key': envKey.key,
    'the key airlock keys printed': cliKey,
    'a vault token': VAULT_TOKENS[0],
    'the replacing vault token': VAULT_TOKENS[1],
    'the model key': 'mock-model-key-SECRET-77aa',
    "bob's input": BOB_INPUT.command,
    "alice's input": ALICE_INPUT.command,
  };
  for (const [name, t] of Object.entries(tokens)) secrets[`${name}'s token`] = t;
  // the parts of a JWT, too: a logged signature or payload is as bad as the whole
  for (const [name, t] of Object.entries(tokens)) secrets[`${name}'s token signature`] = t.split('.')[2];
  for (const [what, s] of Object.entries(secrets)) {
    assert.ok(s && s.length >= 8, what);
    assert.ok(!text.includes(s), `${what} is in the audit log`);
  }
  // and the checks would see one: the tool names and ids are there in clear
  assert.ok(text.includes(sessions.bob.id));
});

// Canonical bytes as docs/server/audit.md defines them (sorted keys, compact; no control
// characters in these records), to forge what a tamperer with write access could: a
// record edited and every record after it re-hashed into a valid chain.
const canon = (v) => (Array.isArray(v) ? `[${v.map(canon).join(',')}]`
  : v && typeof v === 'object' ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canon(v[k])}`).join(',')}}`
    : JSON.stringify(v));
function rechain(recs) {
  let prev = recs[0].prev;
  return recs.map((r) => {
    const { hash, ...rest } = r;
    rest.prev = prev;
    prev = sha256(canon(rest));
    return JSON.stringify({ ...rest, hash: prev });
  });
}

test('checkpoints signed with the published keys: a cut tail or a rewritten log shows', async () => {
  const jwks = await (await fetch(`${srv.baseURL}/.well-known/jwks.json`)).json();
  const jf = path.join(dir, 'jwks.json');
  writeFileSync(jf, JSON.stringify(jwks));
  await srv.stop(); // writes the shutdown checkpoint
  const recs = lines().map((l) => JSON.parse(l));
  const last = recs.at(-1);
  assert.equal(last.action, 'audit.checkpoint');
  assert.equal(last.outcome, 'signed');
  assert.deepEqual([last.resources.seq, last.resources.hash], [last.seq - 1, last.prev]);
  const ok = spawnSync(BIN, ['audit', 'verify', '--jwks', jf, auditFile()], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`signed checkpoints verified, the last at seq ${last.seq}; 0 records after it`));

  // a rewritten log: record 3 edited, every record after it re-hashed (a valid chain)
  const forged = recs.map((r) => ({ ...r }));
  forged[2] = { ...forged[2], outcome: 'rewritten' };
  const chain = [...recs.slice(0, 2).map((r) => JSON.stringify(r)), ...rechain(forged.slice(2))];
  const ff = path.join(dir, 'rewritten.jsonl');
  writeFileSync(ff, chain.join('\n') + '\n');
  const plain = spawnSync(BIN, ['audit', 'verify', ff], { encoding: 'utf8' });
  assert.equal(plain.status, 0, 'without keys the rewritten chain passes: ' + plain.stderr);
  const bad = spawnSync(BIN, ['audit', 'verify', '--jwks', jf, ff], { encoding: 'utf8' });
  assert.equal(bad.status, 1, bad.stdout);
  assert.match(bad.stderr, new RegExp(`:${last.seq}: seq ${last.seq}: checkpoint signature does not verify`));
  assert.match(bad.stderr, /the signed head is not the record before it/);

  // a cut tail: no signed checkpoint left to vouch for it
  const cf = path.join(dir, 'cut.jsonl');
  writeFileSync(cf, lines().slice(0, -2).join('\n') + '\n');
  const cut = spawnSync(BIN, ['audit', 'verify', '--jwks', jf, cf], { encoding: 'utf8' });
  assert.equal(cut.status, 0);
  assert.match(cut.stdout, /no signed checkpoint/);
});
