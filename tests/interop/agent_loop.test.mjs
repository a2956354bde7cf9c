// The server's agent loop driven by the official SDK, with `airlock mock-model` (a
// scripted stand-in for a model provider) behind it: the event stream with deltas,
// custom tools, always_ask confirm and deny, interrupt, retries, restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { betaAgentToolset20260401 } from '@anthropic-ai/sdk/tools/agent-toolset/node';
import { startServer } from './lib/server.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { collect, types } from './lib/events.mjs';

const SERVER_ENV = { AIRLOCK_MODEL_API_KEY: 'mock-model-key', AIRLOCK_MODEL_RETRY_BASE_MS: '10' };

// Collects a session's stream in the background; waitFor() resolves with the first
// collected event (from index `from`) matching pred.

const isIdle = (reason) => (e) => e.type === 'session.status_idle' && e.stop_reason?.type === reason;

async function setup(t, script, { tools = [{ type: 'agent_toolset_20260401' }], dataDir } = {}) {
  const mock = await startMockModel(script);
  t.after(() => mock.stop());
  const server = await startServer({ env: { ...SERVER_ENV, AIRLOCK_MODEL_BASE_URL: mock.url }, dataDir });
  t.after(() => server.stop());
  const client = new Anthropic({ baseURL: server.baseURL, apiKey: server.apiKey, maxRetries: 0 });
  const agent = await client.beta.agents.create({
    name: 'loop-test',
    model: 'claude-test-model',
    system: 'You are a test agent.',
    tools,
  });
  const env = await client.beta.environments.create({ name: 'e', config: { type: 'self_hosted' } });
  const session = await client.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  return { mock, server, client, agent, session };
}

async function openStream(client, sessionId, deltas) {
  const stream = await client.beta.sessions.events.stream(
    sessionId,
    deltas ? { event_deltas: ['agent.message', 'agent.thinking'] } : {},
  );
  return collect(stream);
}

const say = (client, sid, text) =>
  client.beta.sessions.events.send(sid, {
    events: [{ type: 'user.message', content: [{ type: 'text', text }] }],
  });

test('a turn streams deltas and ends idle, with the SDK toolset schemas in the request', async (t) => {
  const text = 'Hello! This answer is streamed to the client in several small deltas.';
  const { mock, client, session } = await setup(t, [
    {
      chunk_size: 8,
      usage: { input_tokens: 321, output_tokens: 45, cache_read_input_tokens: 7 },
      content: [
        { type: 'thinking', thinking: 'The user greets me.' },
        { type: 'text', text },
      ],
    },
  ]);
  const s = await openStream(client, session.id, true);
  t.after(() => s.close());
  await say(client, session.id, 'hello');
  await s.waitFor(isIdle('end_turn'), 0, 'idle');

  const seen = types(s.events).filter((x) => x !== 'event_delta');
  assert.deepEqual(seen, [
    'user.message',
    'session.status_running',
    'span.model_request_start',
    'event_start',
    'event_start',
    'agent.thinking',
    'agent.message',
    'span.model_request_end',
    'session.usage',
    'session.status_idle',
  ]);
  const byType = (ty) => s.events.filter((e) => e.type === ty);
  const [thinkStart, msgStart] = byType('event_start');
  const thinking = byType('agent.thinking')[0];
  const message = byType('agent.message')[0];
  assert.equal(thinkStart.event.type, 'agent.thinking');
  assert.equal(thinkStart.event.id, thinking.id);
  assert.equal(msgStart.event.type, 'agent.message');
  assert.equal(msgStart.event.id, message.id);
  const deltas = byType('event_delta');
  assert.ok(deltas.length >= 5, `expected several deltas, got ${deltas.length}`);
  assert.ok(deltas.every((d) => d.event_id === message.id && d.delta.type === 'content_delta'));
  assert.equal(deltas.map((d) => d.delta.content.text).join(''), text);
  assert.deepEqual(message.content, [{ type: 'text', text }]);

  const start = byType('span.model_request_start')[0];
  const end = byType('span.model_request_end')[0];
  assert.equal(end.model_request_start_id, start.id);
  assert.equal(end.is_error, false);
  assert.equal(end.model_usage.input_tokens, 321);
  assert.equal(end.model_usage.output_tokens, 45);
  assert.equal(end.model_usage.cache_read_input_tokens, 7);
  assert.equal(byType('session.usage')[0].usage.input_tokens, 321);
  const idle = byType('session.status_idle')[0];
  assert.equal(idle.stop_details, null);

  const after = await client.beta.sessions.retrieve(session.id);
  assert.equal(after.status, 'idle');
  assert.equal(after.usage.input_tokens, 321);
  assert.equal(after.usage.output_tokens, 45);

  // History holds the same events, all processed.
  const hist = [];
  for await (const e of client.beta.sessions.events.list(session.id)) hist.push(e);
  assert.deepEqual(types(hist), seen.filter((x) => x !== 'event_start'));
  assert.ok(hist.every((e) => e.processed_at));

  // What the model was sent: the agent's model and system, the SDK's own tool
  // definitions (so a model sees the same tools whichever runner executes them).
  const [req] = await mock.requests();
  assert.equal(req.has_api_key, true);
  assert.equal(req.anthropic_version, '2023-06-01');
  assert.equal(req.body.model, 'claude-test-model');
  assert.equal(req.body.system, 'You are a test agent.');
  assert.equal(req.body.stream, true);
  assert.deepEqual(req.body.messages, [{ role: 'user', content: [{ type: 'text', text: 'hello' }] }]);
  const sdkTools = betaAgentToolset20260401({ workdir: '/tmp' }).map((x) => ({
    name: x.name,
    description: x.description,
    input_schema: x.input_schema,
  }));
  assert.deepEqual(req.body.tools, sdkTools);
});

test('custom tool round trip: requires_action, custom result, next model call', async (t) => {
  const { mock, client, session } = await setup(
    t,
    [
      {
        content: [
          { type: 'text', text: 'Let me look that up.' },
          { type: 'tool_use', name: 'lookup_weather', input: { city: 'Oslo', days: 2 } },
        ],
      },
      { match: 'rain all week', content: [{ type: 'text', text: 'Bring an umbrella.' }] },
    ],
    {
      tools: [
        {
          type: 'custom',
          name: 'lookup_weather',
          description: 'weather by city',
          input_schema: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } } },
        },
      ],
    },
  );
  const s = await openStream(client, session.id);
  t.after(() => s.close());
  await say(client, session.id, 'weather in Oslo?');
  const use = await s.waitFor((e) => e.type === 'agent.custom_tool_use', 0, 'custom tool use');
  assert.equal(use.name, 'lookup_weather');
  assert.deepEqual(use.input, { city: 'Oslo', days: 2 });
  const idle = await s.waitFor(isIdle('requires_action'), 0, 'requires_action');
  assert.deepEqual(idle.stop_reason.event_ids, [use.id]);
  assert.equal((await client.beta.sessions.retrieve(session.id)).status, 'idle');

  const mark = s.events.length;
  await client.beta.sessions.events.send(session.id, {
    events: [
      {
        type: 'user.custom_tool_result',
        custom_tool_use_id: use.id,
        content: [{ type: 'text', text: 'rain all week' }],
      },
    ],
  });
  await s.waitFor(isIdle('end_turn'), mark, 'end_turn');
  const msg = s.events.slice(mark).find((e) => e.type === 'agent.message');
  assert.deepEqual(msg.content, [{ type: 'text', text: 'Bring an umbrella.' }]);
  assert.ok(types(s.events.slice(mark)).includes('session.status_running'));

  const reqs = await mock.requests();
  assert.equal(reqs.length, 2);
  const toolDef = reqs[0].body.tools.find((x) => x.name === 'lookup_weather');
  assert.equal(toolDef.description, 'weather by city');
  assert.deepEqual(reqs[1].body.messages.slice(1), [
    {
      role: 'assistant',
      content: [
        { type: 'text', text: 'Let me look that up.' },
        { type: 'tool_use', id: use.id, name: 'lookup_weather', input: { city: 'Oslo', days: 2 } },
      ],
    },
    {
      role: 'user',
      content: [{ type: 'tool_result', tool_use_id: use.id, content: [{ type: 'text', text: 'rain all week' }] }],
    },
  ]);
});

test('always_ask: allow lets the worker result through, deny records an error result', async (t) => {
  const { mock, client, session } = await setup(
    t,
    [
      { content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo hi' } }] },
      { content: [{ type: 'text', text: 'The command printed hi.' }] },
      { content: [{ type: 'tool_use', name: 'write', input: { file_path: 'x.txt', content: 'x' } }] },
      { match: 'no writes today', content: [{ type: 'text', text: 'Understood, not writing.' }] },
    ],
    { tools: [{ type: 'agent_toolset_20260401', default_config: { permission_policy: { type: 'always_ask' } } }] },
  );
  const s = await openStream(client, session.id);
  t.after(() => s.close());

  await say(client, session.id, 'run echo');
  const use = await s.waitFor((e) => e.type === 'agent.tool_use', 0, 'tool use');
  assert.equal(use.name, 'bash');
  assert.equal(use.evaluated_permission, 'ask');
  assert.deepEqual(use.evaluation, { type: 'always_ask' });
  const idle = await s.waitFor(isIdle('requires_action'), 0, 'requires_action');
  assert.deepEqual(idle.stop_reason.event_ids, [use.id]);

  let mark = s.events.length;
  await client.beta.sessions.events.send(session.id, {
    events: [{ type: 'user.tool_confirmation', tool_use_id: use.id, result: 'allow' }],
  });
  await s.waitFor((e) => e.type === 'session.status_running', mark, 'running after allow');
  // The worker's part: the result of the allowed call.
  await client.beta.sessions.events.send(session.id, {
    events: [{ type: 'user.tool_result', tool_use_id: use.id, content: [{ type: 'text', text: 'hi' }], is_error: false }],
  });
  await s.waitFor(isIdle('end_turn'), mark, 'end_turn after result');
  assert.deepEqual(s.events.slice(mark).find((e) => e.type === 'agent.message').content, [
    { type: 'text', text: 'The command printed hi.' },
  ]);

  mark = s.events.length;
  await say(client, session.id, 'now write a file');
  const wuse = await s.waitFor((e) => e.type === 'agent.tool_use', mark, 'write tool use');
  await s.waitFor(isIdle('requires_action'), mark, 'requires_action for write');
  const mark2 = s.events.length;
  await client.beta.sessions.events.send(session.id, {
    events: [{ type: 'user.tool_confirmation', tool_use_id: wuse.id, result: 'deny', deny_message: 'no writes today' }],
  });
  const denied = await s.waitFor((e) => e.type === 'agent.tool_result', mark2, 'denial result');
  assert.equal(denied.tool_use_id, wuse.id);
  assert.equal(denied.is_error, true);
  assert.match(denied.content[0].text, /no writes today/);
  await s.waitFor(isIdle('end_turn'), mark2, 'end_turn after deny');
  assert.deepEqual(s.events.slice(mark2).find((e) => e.type === 'agent.message').content, [
    { type: 'text', text: 'Understood, not writing.' },
  ]);

  const reqs = await mock.requests();
  assert.equal(reqs.length, 4);
  const last = reqs[3].body.messages.at(-1);
  assert.equal(last.role, 'user');
  assert.equal(last.content[0].type, 'tool_result');
  assert.equal(last.content[0].tool_use_id, wuse.id);
  assert.equal(last.content[0].is_error, true);
});

test('user.interrupt cancels the model call in flight and ends the turn', async (t) => {
  const { mock, client, session } = await setup(t, [
    { delay_ms: 60000, content: [{ type: 'text', text: 'never delivered' }] },
    { content: [{ type: 'text', text: 'fresh answer' }] },
  ]);
  const s = await openStream(client, session.id);
  t.after(() => s.close());
  await say(client, session.id, 'take your time');
  const start = await s.waitFor((e) => e.type === 'span.model_request_start', 0, 'request start');
  // The call is really in flight at the mock before we interrupt it.
  while ((await mock.requests()).length < 1) await new Promise((r) => setTimeout(r, 20));
  await client.beta.sessions.events.send(session.id, { events: [{ type: 'user.interrupt' }] });
  const end = await s.waitFor((e) => e.type === 'span.model_request_end', 0, 'span end');
  assert.equal(end.model_request_start_id, start.id);
  assert.equal(end.is_error, true);
  await s.waitFor(isIdle('end_turn'), 0, 'idle after interrupt');
  assert.ok(!s.events.some((e) => e.type === 'agent.message'));
  assert.equal((await client.beta.sessions.retrieve(session.id)).status, 'idle');

  // The session goes on with the next message.
  const mark = s.events.length;
  await say(client, session.id, 'again');
  await s.waitFor(isIdle('end_turn'), mark, 'next turn');
  assert.deepEqual(s.events.slice(mark).find((e) => e.type === 'agent.message').content, [
    { type: 'text', text: 'fresh answer' },
  ]);
});

test('overloaded twice, then success: retrying errors and rescheduling', async (t) => {
  const { mock, client, session } = await setup(t, [
    { error: { status: 529, type: 'overloaded_error', message: 'Overloaded' } },
    { error: { status: 429, type: 'rate_limit_error', message: 'slow down', retry_after_ms: 20 } },
    { content: [{ type: 'text', text: 'made it' }] },
  ]);
  const s = await openStream(client, session.id);
  t.after(() => s.close());
  await say(client, session.id, 'hi');
  await s.waitFor(isIdle('end_turn'), 0, 'idle');
  const errors = s.events.filter((e) => e.type === 'session.error');
  assert.equal(errors.length, 2);
  assert.equal(errors[0].error.type, 'model_overloaded_error');
  assert.equal(errors[1].error.type, 'model_rate_limited_error');
  assert.ok(errors.every((e) => e.error.retry_status.type === 'retrying'));
  assert.equal(s.events.filter((e) => e.type === 'session.status_rescheduled').length, 2);
  assert.equal(s.events.filter((e) => e.type === 'session.status_running').length, 3);
  const ends = s.events.filter((e) => e.type === 'span.model_request_end');
  assert.deepEqual(ends.map((e) => e.is_error), [true, true, false]);
  assert.deepEqual(s.events.find((e) => e.type === 'agent.message').content, [{ type: 'text', text: 'made it' }]);
  assert.equal((await mock.requests()).length, 3);
  // Every attempt sent the same conversation.
  const bodies = (await mock.requests()).map((r) => JSON.stringify(r.body.messages));
  assert.equal(new Set(bodies).size, 1);
});

test('retries exhausted: the turn ends with retries_exhausted', async (t) => {
  const { mock, client, session } = await setup(t, {
    turns: [{ error: { status: 500, type: 'api_error', message: 'boom' } }],
    loop: true,
  });
  const s = await openStream(client, session.id);
  t.after(() => s.close());
  await say(client, session.id, 'hi');
  const idle = await s.waitFor((e) => e.type === 'session.status_idle', 0, 'idle');
  assert.equal(idle.stop_reason.type, 'retries_exhausted');
  const errors = s.events.filter((e) => e.type === 'session.error');
  assert.equal(errors.length, 6); // 1 try + 5 retries
  assert.deepEqual(
    errors.map((e) => e.error.retry_status.type),
    ['retrying', 'retrying', 'retrying', 'retrying', 'retrying', 'exhausted'],
  );
  assert.match(errors[5].error.message, /500/);
  assert.equal((await mock.requests()).length, 6);
  assert.equal((await client.beta.sessions.retrieve(session.id)).status, 'idle');

  // A request the provider refuses (400) is not retried.
  const { client: c2, session: s2 } = await setup(t, [
    { error: { status: 400, type: 'invalid_request_error', message: 'bad tools' } },
  ]);
  const st2 = await openStream(c2, s2.id);
  t.after(() => st2.close());
  await say(c2, s2.id, 'hi');
  await st2.waitFor((e) => e.type === 'session.status_idle', 0, 'idle');
  const e2 = st2.events.filter((e) => e.type === 'session.error');
  assert.equal(e2.length, 1);
  assert.equal(e2[0].error.retry_status.type, 'terminal');
  assert.equal(e2[0].error.type, 'model_request_failed_error');
});

test('a server killed mid-call resumes the session after restart', async (t) => {
  const mock = await startMockModel([
    { delay_ms: 60000, content: [{ type: 'text', text: 'lost with the old server' }] },
    { content: [{ type: 'text', text: 'answered after restart' }] },
  ]);
  t.after(() => mock.stop());
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'airlock-loop-restart-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  // On PostgreSQL the killed server's loop lease must lapse before the restarted one
  // (another replica as far as the database knows) resumes the session: a short TTL.
  const env = { ...SERVER_ENV, AIRLOCK_MODEL_BASE_URL: mock.url, AIRLOCK_LOOP_LEASE_MS: '2000' };
  const first = await startServer({ env, dataDir });
  const c1 = new Anthropic({ baseURL: first.baseURL, apiKey: first.apiKey, maxRetries: 0 });
  const agent = await c1.beta.agents.create({ name: 'r', model: 'claude-test-model', tools: [] });
  const environment = await c1.beta.environments.create({ name: 'e', config: { type: 'self_hosted' } });
  const session = await c1.beta.sessions.create({ agent: agent.id, environment_id: environment.id });
  await say(c1, session.id, 'survive this');
  while ((await mock.requests()).length < 1) await new Promise((r) => setTimeout(r, 20));
  first.proc.kill('SIGKILL');
  await new Promise((r) => first.proc.once('exit', r));

  const second = await startServer({ env: { ...env, AIRLOCK_API_KEY: first.apiKey }, dataDir });
  t.after(() => second.stop());
  const c2 = new Anthropic({ baseURL: second.baseURL, apiKey: second.apiKey, maxRetries: 0 });
  let hist = [];
  for (let i = 0; i < 200; i++) {
    hist = [];
    for await (const e of c2.beta.sessions.events.list(session.id)) hist.push(e);
    if (hist.some((e) => e.type === 'session.status_idle')) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const tys = types(hist);
  assert.ok(tys.includes('session.status_idle'), `no idle after restart: ${tys.join(', ')}`);
  const ends = hist.filter((e) => e.type === 'span.model_request_end');
  assert.deepEqual(ends.map((e) => e.is_error), [true, false]);
  assert.deepEqual(hist.find((e) => e.type === 'agent.message').content, [
    { type: 'text', text: 'answered after restart' },
  ]);
  assert.equal((await mock.requests()).length, 2);
});
