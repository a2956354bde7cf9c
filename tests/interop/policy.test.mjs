// The tool policy in a running server, event by event: OIDC users from a real OpenID
// provider (npm oidc-provider), the official SDK, and `airlock mock-model` (a scripted
// stand-in for a model provider) playing a model that calls tools — including ones it
// was never offered. An intern is never offered bash and a bash call anyway is answered
// with the rule that denied it; an auditor's write waits for a confirmation; a changed
// policy file applies to the next call of a session already running; groups map to roles.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { collect } from './lib/events.mjs';
import { startPolicyRig } from './lib/policy_rig.mjs';

const POLICY = (shell = 'allow') => `default: deny
roles:
  admin: [platform-admins]
  developer: [engineers]
rules:
  - id: auditors-tools
    effect: allow
    groups: [auditors]
    tools: [bash, read, grep, write]
  - id: auditors-shell
    effect: ${shell}
    groups: [auditors]
    tools: [bash]
  - id: writes-need-a-yes
    effect: ask
    groups: [auditors]
    tools: [write]
  - id: interns-read
    effect: allow
    groups: [interns]
    tools: [read, bash]
  - id: no-intern-shell
    effect: deny
    groups: [interns]
    tools: [bash]
`;

const SCRIPT = [
  { match: 'bob-go', content: [{ type: 'tool_use', name: 'bash', input: { command: 'id' } }] },
  { match: 'denied by policy rule no-intern-shell', content: [{ type: 'text', text: 'understood' }] },
  { match: 'alice-go', content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo one' } }] },
  { match: 'first-result', content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo two' } }] },
  { match: 'denied by policy rule auditors-shell', content: [{ type: 'text', text: 'shell is off' }] },
  { match: 'alice-write', content: [{ type: 'tool_use', name: 'write', input: { file_path: '/workspace/r.txt', content: 'x' } }] },
  { match: 'written', content: [{ type: 'text', text: 'done' }] },
];

let rig;
let idp;
let mock;
let srv;
let admin;
let agent;
let env;
let writePolicy;
let userClient;
let say;

const toolNames = (body) => (body.tools ?? []).map((t) => t.name).sort();
function requestFor(marker) {
  return mock.requests().then((r) => r.filter((q) =>
    JSON.stringify(q.body.messages).includes(marker)).map((q) => q.body));
}

before(async () => {
  rig = await startPolicyRig({ name: 'policy', policy: POLICY(), script: SCRIPT });
  ({ idp, mock, srv, admin, agent, env, writePolicy, userClient, say } = rig);
  assert.match(srv.log(), /policy loaded.*rules=5/);
});

after(async () => {
  await rig?.stop();
});

test('an intern is never offered bash; a bash call anyway gets the rule, not the worker', async () => {
  const bob = await userClient('bob');
  const s = await bob.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  const ev = collect(await bob.beta.sessions.events.stream(s.id));
  await say(bob, s.id, 'bob-go');
  const use = await ev.waitFor((e) => e.type === 'agent.tool_use', 0, 'agent.tool_use');
  assert.equal(use.name, 'bash');
  assert.equal(use.evaluated_permission, 'deny');
  assert.equal(use.evaluation.policy_rule, 'no-intern-shell');
  const res = await ev.waitFor((e) => e.type === 'agent.tool_result' && e.tool_use_id === use.id, 0, 'the denial');
  assert.equal(res.is_error, true);
  assert.match(res.content[0].text, /denied by policy rule no-intern-shell/);
  await ev.waitFor((e) => e.type === 'agent.message', 0, 'the answer after the denial');
  ev.close();
  // the model request offered read only: bash denied, everything else by the default
  const [first] = await requestFor('bob-go');
  assert.deepEqual(toolNames(first), ['read']);
  // no user.tool_result: nothing ran it
  const all = [];
  for await (const e of admin.beta.sessions.events.list(s.id)) all.push(e);
  assert.equal(all.filter((e) => e.type === 'user.tool_result').length, 0);
});

test('an auditor\'s bash runs; after the policy changes the next call of the same session is denied', async () => {
  const alice = await userClient('alice');
  const s = await alice.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  const ev = collect(await alice.beta.sessions.events.stream(s.id));
  await say(alice, s.id, 'alice-go');
  const use = await ev.waitFor((e) => e.type === 'agent.tool_use', 0, 'agent.tool_use');
  assert.equal(use.evaluated_permission, 'allow');
  assert.equal(use.evaluation.policy_rule, 'auditors-tools');
  const [req] = await requestFor('alice-go');
  assert.deepEqual(toolNames(req), ['bash', 'grep', 'read', 'write']);

  writePolicy(POLICY('deny'));
  for (let i = 0; i < 100 && !/policy loaded.*trigger="?file changed/.test(srv.log()); i++)
    await new Promise((r) => setTimeout(r, 50));
  assert.match(srv.log(), /policy loaded.*trigger="?file changed/);

  // the worker's answer (sent here with the API key, as a worker would)
  await admin.beta.sessions.events.send(s.id, {
    events: [{ type: 'user.tool_result', tool_use_id: use.id, content: [{ type: 'text', text: 'first-result' }] }],
  });
  const second = await ev.waitFor((e) => e.type === 'agent.tool_use' && e.id !== use.id, 0, 'the second call');
  assert.equal(second.evaluated_permission, 'deny');
  assert.equal(second.evaluation.policy_rule, 'auditors-shell');
  const res = await ev.waitFor((e) => e.type === 'agent.tool_result' && e.tool_use_id === second.id, 0, 'its denial');
  assert.match(res.content[0].text, /denied by policy rule auditors-shell/);
  ev.close();
  const reqs = await requestFor('first-result');
  assert.ok(!toolNames(reqs.at(-1)).includes('bash'), 'bash is no longer offered either');
  writePolicy(POLICY());
});

test('a bad policy file keeps the last good policy, with FILE:LINE in the log', async () => {
  writePolicy('default: deny\nrules:\n  - id: x\n    effect: maybe\n    tools: [bash]\n');
  for (let i = 0; i < 100 && !/policy file refused/.test(srv.log()); i++)
    await new Promise((r) => setTimeout(r, 50));
  assert.match(srv.log(), /policy file refused: keeping the last good policy.*policy\.yaml:4/);
  writePolicy(POLICY());
});

test('an ask rule waits for a confirmation', async () => {
  const alice = await userClient('alice');
  const s = await alice.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  const ev = collect(await alice.beta.sessions.events.stream(s.id));
  await say(alice, s.id, 'alice-write');
  const use = await ev.waitFor((e) => e.type === 'agent.tool_use', 0, 'agent.tool_use');
  assert.equal(use.name, 'write');
  assert.equal(use.evaluated_permission, 'ask');
  assert.equal(use.evaluation.policy_rule, 'writes-need-a-yes');
  await ev.waitFor((e) => e.type === 'session.status_idle' && e.stop_reason?.type === 'requires_action', 0, 'requires_action');
  await alice.beta.sessions.events.send(s.id, {
    events: [{ type: 'user.tool_confirmation', tool_use_id: use.id, result: 'allow' }],
  });
  await admin.beta.sessions.events.send(s.id, {
    events: [{ type: 'user.tool_result', tool_use_id: use.id, content: [{ type: 'text', text: 'written' }] }],
  });
  await ev.waitFor((e) => e.type === 'agent.message', 0, 'the answer');
  ev.close();
});

test('groups map to roles: engineers are developers, platform-admins see every session', async () => {
  const erin = await userClient('erin');
  const pat = await userClient('pat');
  const bob = await userClient('bob');
  const made = await erin.beta.agents.create({ name: 'by-erin', model: 'claude-test' });
  assert.equal(made.name, 'by-erin');
  await assert.rejects(bob.beta.agents.create({ name: 'by-bob', model: 'claude-test' }),
    (e) => e.status === 403 && /role user may not/.test(e.message));
  const r = await fetch(`${srv.baseURL}/v1/environments/${env.id}/keys`, {
    method: 'POST', headers: { authorization: `Bearer ${await idp.token('erin')}`, 'content-type': 'application/json' }, body: '{}',
  });
  assert.equal(r.status, 403);
  const bobs = await bob.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  assert.equal((await pat.beta.sessions.retrieve(bobs.id)).id, bobs.id);
  await assert.rejects(erin.beta.sessions.retrieve(bobs.id), (e) => e.status === 404);
});
