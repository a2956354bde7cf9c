// The official SDK, unmodified, against a real `airlock server`: agents, environments
// and sessions CRUD, versioning, pagination (sessions in both directions) and the
// error classes the SDK raises for our answers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic, { toFile } from '@anthropic-ai/sdk';
import { startServer } from './lib/server.mjs';

let srv;
let client;

before(async () => {
  srv = await startServer();
  client = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
});
after(async () => {
  await srv?.stop();
});

const TOOL_NAMES = ['bash', 'edit', 'read', 'write', 'glob', 'grep', 'web_fetch', 'web_search'];

async function rejects(promise, cls, re) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message}`);
    if (re) assert.match(err.message, re);
    return true;
  });
}

test('agents: create resolves model, toolset and defaults', async () => {
  // a custom skill must exist (skills.md "Agents and sessions")
  const sk = await client.beta.skills.create({
    files: [await toFile(Buffer.from('---\nname: abc\ndescription: d\n---\n'), 'abc/SKILL.md')],
  });
  const a = await client.beta.agents.create({
    name: 'Coding Assistant',
    model: 'claude-opus-4-8',
    system: 'You are a helpful coding assistant.',
    tools: [
      {
        type: 'agent_toolset_20260401',
        configs: [{ name: 'bash', permission_policy: { type: 'always_ask' } }, { name: 'web_search', enabled: false }],
      },
      { type: 'mcp_toolset', mcp_server_name: 'docs' },
      {
        type: 'custom',
        name: 'lookup_order',
        description: 'Find an order',
        input_schema: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
      },
    ],
    mcp_servers: [{ type: 'url', name: 'docs', url: 'https://docs.example.test/mcp' }],
    skills: [{ type: 'custom', skill_id: sk.id }],
    metadata: { team: 'infra' },
  });
  assert.equal(a.type, 'agent');
  assert.match(a.id, /^agent_[A-Za-z0-9]{24}$/);
  assert.equal(a.version, 1);
  assert.deepEqual(a.model, { id: 'claude-opus-4-8', effort: { type: 'high' }, speed: 'standard' });
  assert.equal(a.description, null);
  assert.equal(a.multiagent, null);
  assert.equal(a.archived_at, null);
  assert.deepEqual(a.execution_identity, { type: 'service_account' });
  assert.deepEqual(a.metadata, { team: 'infra' });
  assert.deepEqual(a.skills, [{ type: 'custom', skill_id: sk.id, version: 'latest' }]);
  const ts = a.tools[0];
  assert.deepEqual(ts.default_config, { enabled: true, permission_policy: { type: 'always_allow' } });
  assert.deepEqual(ts.configs.map((c) => c.name), TOOL_NAMES);
  const byName = Object.fromEntries(ts.configs.map((c) => [c.name, c]));
  assert.deepEqual(byName.bash.permission_policy, { type: 'always_ask' });
  assert.equal(byName.bash.type, 'bash');
  assert.equal(byName.web_search.enabled, false);
  assert.deepEqual(byName.read.permission_policy, { type: 'always_allow' });
  assert.equal(byName.web_fetch.url_sources, null);
  // MCP toolsets default to always_ask (tools.md §14.3).
  assert.deepEqual(a.tools[1].default_config, { enabled: true, permission_policy: { type: 'always_ask' } });
  assert.deepEqual(a.tools[1].configs, []);
  assert.equal(a.tools[2].name, 'lookup_order');
  assert.ok(!Number.isNaN(Date.parse(a.created_at)));

  const got = await client.beta.agents.retrieve(a.id);
  assert.deepEqual(got, a);

  const m = await client.beta.agents.create({
    name: 'm',
    model: { id: 'claude-sonnet-4-6', effort: 'low', speed: 'fast' },
  });
  assert.deepEqual(m.model, { id: 'claude-sonnet-4-6', effort: { type: 'low' }, speed: 'fast' });
  assert.deepEqual(m.tools, []);
  assert.deepEqual(m.mcp_servers, []);
});

test('agents: validation errors are BadRequestError naming the field', async () => {
  const base = { name: 'x', model: 'claude-opus-4-8' };
  await rejects(client.beta.agents.create({ model: 'claude-opus-4-8' }), Anthropic.BadRequestError, /name/);
  await rejects(
    client.beta.agents.create({ ...base, tools: [{ type: 'custom', name: 'bad name', description: 'd', input_schema: { type: 'object' } }] }),
    Anthropic.BadRequestError,
    /tools\[0\]\.name/,
  );
  await rejects(
    client.beta.agents.create({ ...base, tools: [{ type: 'custom', name: 'bash', description: 'd', input_schema: { type: 'object' } }] }),
    Anthropic.BadRequestError,
    /built-in/,
  );
  await rejects(
    client.beta.agents.create({ ...base, tools: [{ type: 'custom', name: 'mcp__x', description: 'd', input_schema: { type: 'object' } }] }),
    Anthropic.BadRequestError,
    /mcp__/,
  );
  await rejects(
    client.beta.agents.create({
      ...base,
      tools: [{ type: 'custom', name: 'x', description: 'd', input_schema: { type: 'object', properties: { a: { $ref: '#/x' } } } }],
    }),
    Anthropic.BadRequestError,
    /\$ref/,
  );
  // An MCP server without its toolset, and a toolset without its server.
  await rejects(
    client.beta.agents.create({ ...base, mcp_servers: [{ type: 'url', name: 'd', url: 'https://d.test/mcp' }] }),
    Anthropic.BadRequestError,
    /mcp_servers\[0\]/,
  );
  await rejects(
    client.beta.agents.create({ ...base, tools: [{ type: 'mcp_toolset', mcp_server_name: 'nope' }] }),
    Anthropic.BadRequestError,
    /tools\[0\]\.mcp_server_name/,
  );
  await rejects(
    client.beta.agents.create({ ...base, tools: [{ type: 'agent_toolset_20260401', configs: [{ name: 'rm' }] }] }),
    Anthropic.BadRequestError,
    /tools\[0\]\.configs\[0\]\.name/,
  );
  await rejects(client.beta.agents.create({ ...base, metadata: { k: 'v'.repeat(513) } }), Anthropic.BadRequestError);
  await rejects(client.beta.agents.create({ ...base, bogus: 1 }), Anthropic.BadRequestError, /bogus/);
  await rejects(client.beta.agents.retrieve('agent_doesnotexist'), Anthropic.NotFoundError);
});

test('agents: update creates versions, no-op does not, version conflict is 409', async () => {
  const a = await client.beta.agents.create({ name: 'v', model: 'claude-opus-4-8', metadata: { a: '1', b: '2' } });
  const u1 = await client.beta.agents.update(a.id, { version: 1, system: 'be brief', metadata: { a: null, c: '3' } });
  assert.equal(u1.version, 2);
  assert.equal(u1.system, 'be brief');
  assert.equal(u1.name, 'v');
  assert.deepEqual(u1.metadata, { b: '2', c: '3' });
  assert.equal(u1.created_at, a.created_at);

  const same = await client.beta.agents.update(a.id, { system: 'be brief' });
  assert.equal(same.version, 2, 'a no-op update must not create a version');

  await rejects(client.beta.agents.update(a.id, { version: 1, name: 'stale' }), Anthropic.ConflictError);
  const after409 = await client.beta.agents.retrieve(a.id);
  assert.equal(after409.name, 'v', 'a rejected update changes nothing');
  assert.equal(after409.version, 2);

  const old = await client.beta.agents.retrieve(a.id, { version: 1 });
  assert.equal(old.version, 1);
  assert.equal(old.system, null);
  await rejects(client.beta.agents.retrieve(a.id, { version: 9 }), Anthropic.NotFoundError);

  const versions = [];
  for await (const v of client.beta.agents.versions.list(a.id, { limit: 1 })) versions.push(v.version);
  assert.deepEqual(versions.sort(), [1, 2]);
});

test('agents: list pages with a cursor; archive makes the agent read-only', async () => {
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await client.beta.agents.create({ name: `p${i}`, model: 'claude-opus-4-8' })).id);
  const first = await client.beta.agents.list({ limit: 2 });
  assert.equal(first.data.length, 2);
  assert.ok(first.next_page, 'more than one page');
  const seen = [];
  for await (const a of client.beta.agents.list({ limit: 2 })) seen.push(a.id);
  for (const id of ids) assert.ok(seen.includes(id));
  assert.equal(new Set(seen).size, seen.length, 'no duplicates across pages');
  // Newest first by default.
  assert.ok(seen.indexOf(ids[4]) < seen.indexOf(ids[0]));

  const arch = await client.beta.agents.archive(ids[0]);
  assert.ok(arch.archived_at);
  await rejects(client.beta.agents.update(ids[0], { name: 'nope' }), Anthropic.BadRequestError, /archived/);
  const live = [];
  for await (const a of client.beta.agents.list({ limit: 100 })) live.push(a.id);
  assert.ok(!live.includes(ids[0]));
  const all = [];
  for await (const a of client.beta.agents.list({ limit: 100, include_archived: true })) all.push(a.id);
  assert.ok(all.includes(ids[0]));

  const env = await client.beta.environments.create({ name: 'for-archived' });
  await rejects(client.beta.sessions.create({ agent: ids[0], environment_id: env.id }), Anthropic.BadRequestError, /archived/);
});

test('environments: CRUD, cloud rejected, config type immutable', async () => {
  const e = await client.beta.environments.create({ name: 'dev', config: { type: 'self_hosted' }, metadata: { x: '1' } });
  assert.equal(e.type, 'environment');
  assert.match(e.id, /^env_/);
  assert.deepEqual(e.config, { type: 'self_hosted' });
  assert.equal(e.description, null);
  assert.equal(e.archived_at, null);
  const dflt = await client.beta.environments.create({ name: 'default-config' });
  assert.deepEqual(dflt.config, { type: 'self_hosted' });

  await rejects(
    client.beta.environments.create({ name: 'c', config: { type: 'cloud', networking: { type: 'unrestricted' } } }),
    Anthropic.BadRequestError,
    /self-hosted/,
  );
  await rejects(client.beta.environments.update(e.id, { config: { type: 'cloud' } }), Anthropic.BadRequestError);
  try {
    await client.beta.environments.update(e.id, { config: { type: 'cloud' } });
  } catch (err) {
    assert.equal(err.errorCode, 'invalid_config_type_change');
  }

  const u = await client.beta.environments.update(e.id, { description: 'desc', metadata: { x: null, y: '2' } });
  assert.equal(u.description, 'desc');
  assert.equal(u.name, 'dev');
  assert.deepEqual(u.metadata, { y: '2' });
  assert.deepEqual(await client.beta.environments.retrieve(e.id), u);

  const listed = [];
  for await (const x of client.beta.environments.list({ limit: 1 })) listed.push(x.id);
  assert.ok(listed.includes(e.id) && listed.includes(dflt.id));

  const arch = await client.beta.environments.archive(dflt.id);
  assert.ok(arch.archived_at);
  await rejects(client.beta.environments.update(dflt.id, { name: 'z' }), Anthropic.BadRequestError);

  const del = await client.beta.environments.delete(e.id);
  assert.deepEqual(del, { id: e.id, type: 'environment_deleted' });
  await rejects(client.beta.environments.retrieve(e.id), Anthropic.NotFoundError);
});

test('sessions: create, retrieve, update, archive, delete', async () => {
  const agent = await client.beta.agents.create({ name: 's', model: 'claude-opus-4-8', tools: [{ type: 'agent_toolset_20260401' }] });
  const env = await client.beta.environments.create({ name: 'sess' });
  const s = await client.beta.sessions.create({
    agent: agent.id,
    environment_id: env.id,
    title: 'demo',
    metadata: { k: 'v' },
    budget: { type: 'limit', max_list_cost: { amount: '2500', currency: 'USD' } },
    initial_events: [
      { type: 'user.message', content: [{ type: 'text', text: 'hello' }] },
      { type: 'user.define_outcome', description: 'done', rubric: { type: 'text', content: 'it works' } },
    ],
  });
  assert.equal(s.type, 'session');
  assert.match(s.id, /^sesn_/);
  assert.equal(s.status, 'idle');
  assert.equal(s.title, 'demo');
  assert.equal(s.environment_id, env.id);
  assert.equal(s.agent.id, agent.id);
  assert.equal(s.agent.version, 1);
  assert.equal(s.agent.type, 'agent');
  assert.deepEqual(s.agent.tools, agent.tools);
  assert.deepEqual(s.resources, []);
  assert.deepEqual(s.vault_ids, []);
  assert.deepEqual(s.outcome_evaluations, []);
  assert.equal(s.archived_at, null);
  assert.equal(s.budget.max_list_cost.amount, '2500');

  // The initial events were stored in the same transaction.
  const evs = await client.beta.sessions.events.list(s.id);
  const types = evs.data.map((e) => e.type);
  assert.ok(types.includes('user.message'), `events: ${types}`);
  const outcome = evs.data.find((e) => e.type === 'user.define_outcome');
  assert.match(outcome.outcome_id, /^outc_/);

  // Snapshot: a later agent change does not touch the session.
  await client.beta.agents.update(agent.id, { system: 'changed' });
  assert.equal((await client.beta.sessions.retrieve(s.id)).agent.system, null);
  const pinned = await client.beta.sessions.create({ agent: { type: 'agent', id: agent.id, version: 1 }, environment_id: env.id });
  assert.equal(pinned.agent.version, 1);
  const ovr = await client.beta.sessions.create({
    agent: { type: 'agent_with_overrides', id: agent.id, system: 'override', model: 'claude-haiku-4-5' },
    environment_id: env.id,
  });
  assert.equal(ovr.agent.system, 'override');
  assert.equal(ovr.agent.model.id, 'claude-haiku-4-5');
  assert.equal(ovr.agent.version, 2);

  const u = await client.beta.sessions.update(s.id, { title: 'renamed', metadata: { k: null, j: 'w' }, budget: null });
  assert.equal(u.title, 'renamed');
  assert.deepEqual(u.metadata, { j: 'w' });
  assert.equal(u.budget, null);
  const upd = (await client.beta.sessions.events.list(s.id)).data.filter((e) => e.type === 'session.updated');
  assert.equal(upd.length, 1);
  assert.equal(upd[0].title, 'renamed');
  assert.ok(!('agent' in upd[0]), 'session.updated carries changed fields only');
  await rejects(client.beta.sessions.update(s.id, { vault_ids: [] }), Anthropic.BadRequestError, /vault_ids/);

  const arch = await client.beta.sessions.archive(ovr.id);
  assert.ok(arch.archived_at);
  await rejects(client.beta.sessions.update(ovr.id, { title: 'x' }), Anthropic.BadRequestError);

  const del = await client.beta.sessions.delete(pinned.id);
  assert.deepEqual(del, { id: pinned.id, type: 'session_deleted' });
  await rejects(client.beta.sessions.retrieve(pinned.id), Anthropic.NotFoundError);
});

test('sessions: bad references and resources', async () => {
  const agent = await client.beta.agents.create({ name: 'r', model: 'claude-opus-4-8' });
  const env = await client.beta.environments.create({ name: 'r' });
  await rejects(client.beta.sessions.create({ agent: agent.id, environment_id: 'env_missing' }), Anthropic.NotFoundError);
  await rejects(client.beta.sessions.create({ agent: 'agent_missing', environment_id: env.id }), Anthropic.NotFoundError);
  await rejects(
    client.beta.sessions.create({ agent: agent.id, environment_id: env.id, resources: [{ type: 'file', file_id: 'file_x' }] }),
    Anthropic.BadRequestError,
    new RegExp(`Environment ${env.id} is a self-hosted environment\\. \`resources\` are not supported with self-hosted environments\\.`),
  );
  await rejects(
    client.beta.sessions.create({
      agent: agent.id,
      environment_id: env.id,
      initial_events: [{ type: 'user.message', content: [{ type: 'text', text: 'ok' }] }, { type: 'user.interrupt' }],
    }),
    Anthropic.BadRequestError,
    /initial_events\[1\]/,
  );
  const archived = await client.beta.environments.create({ name: 'gone' });
  await client.beta.environments.archive(archived.id);
  try {
    await client.beta.sessions.create({ agent: agent.id, environment_id: archived.id });
    assert.fail('expected an error');
  } catch (err) {
    assert.ok(err instanceof Anthropic.BadRequestError);
    assert.equal(err.errorCode, 'environment_archived');
  }
  // None of the rejected creates left a session behind.
  const list = await client.beta.sessions.list({ agent_id: agent.id });
  assert.equal(list.data.length, 0);
});

test('sessions: bidirectional pagination and filters', async () => {
  const agent = await client.beta.agents.create({ name: 'pg', model: 'claude-opus-4-8' });
  const env = await client.beta.environments.create({ name: 'pg' });
  const ids = [];
  for (let i = 0; i < 7; i++) ids.push((await client.beta.sessions.create({ agent: agent.id, environment_id: env.id, title: `t${i}` })).id);
  const newestFirst = [...ids].reverse();

  const p1 = await client.beta.sessions.list({ agent_id: agent.id, limit: 3 });
  assert.deepEqual(p1.data.map((s) => s.id), newestFirst.slice(0, 3));
  assert.equal(p1.prev_page, null, 'no prev_page on the first page');
  assert.ok(p1.next_page);
  const p2 = await p1.getNextPage();
  assert.deepEqual(p2.data.map((s) => s.id), newestFirst.slice(3, 6));
  assert.ok(p2.prev_page);
  const p3 = await p2.getNextPage();
  assert.deepEqual(p3.data.map((s) => s.id), newestFirst.slice(6));
  assert.equal(p3.next_page, null);

  // Walk back with prev_page.
  const b2 = await client.beta.sessions.list({ agent_id: agent.id, limit: 3, page: p3.prev_page });
  assert.deepEqual(b2.data.map((s) => s.id), newestFirst.slice(3, 6));
  const b1 = await client.beta.sessions.list({ agent_id: agent.id, limit: 3, page: b2.prev_page });
  assert.deepEqual(b1.data.map((s) => s.id), newestFirst.slice(0, 3));
  assert.equal(b1.prev_page, null);
  assert.ok(b1.next_page);

  const all = [];
  for await (const s of client.beta.sessions.list({ agent_id: agent.id, limit: 2, order: 'asc' })) all.push(s.id);
  assert.deepEqual(all, ids);

  const idle = await client.beta.sessions.list({ agent_id: agent.id, statuses: ['idle'], limit: 100 });
  assert.equal(idle.data.length, 7);
  const running = await client.beta.sessions.list({ agent_id: agent.id, statuses: ['running'], limit: 100 });
  assert.equal(running.data.length, 0);
  await client.beta.sessions.archive(ids[0]);
  const live = await client.beta.sessions.list({ agent_id: agent.id, limit: 100 });
  assert.equal(live.data.length, 6);
  const withArchived = await client.beta.sessions.list({ agent_id: agent.id, limit: 100, include_archived: true });
  assert.equal(withArchived.data.length, 7);
  const future = await client.beta.sessions.list({ agent_id: agent.id, 'created_at[gt]': '2999-01-01T00:00:00Z' });
  assert.equal(future.data.length, 0);
  await rejects(client.beta.sessions.list({ page: 'not-a-cursor' }), Anthropic.BadRequestError);
});
