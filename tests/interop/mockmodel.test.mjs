// The official SDK parses `airlock mock-model` output (a scripted stand-in for a
// model provider), so the mock cannot drift from the Messages API wire format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import Anthropic from '@anthropic-ai/sdk';
import { startMockModel, runMockModelExpectingFailure } from './lib/mockmodel.mjs';

const SRC = process.env.AIRLOCK_SRCDIR ?? path.resolve('../..');
const user = (text) => [{ role: 'user', content: text }];
const client = (mock, opts = {}) =>
  new Anthropic({ baseURL: mock.url, apiKey: 'mock-key', maxRetries: 0, ...opts });

test('stream(): thinking, text deltas and usage from the YAML script', async (t) => {
  const mock = await startMockModel(path.join(SRC, 'tests/scripts/mock-basic.yaml'));
  t.after(() => mock.stop());
  const c = client(mock);
  const deltas = [];
  let thinking = '';
  const stream = c.messages.stream({ model: 'claude-test', max_tokens: 100, messages: user('hi') });
  stream.on('text', (d) => deltas.push(d));
  stream.on('thinking', (d) => (thinking += d));
  const msg = await stream.finalMessage();
  assert.equal(msg.role, 'assistant');
  assert.equal(msg.model, 'claude-test');
  assert.match(msg.id, /^msg_/);
  assert.equal(msg.stop_reason, 'end_turn');
  assert.equal(msg.content.length, 2);
  assert.equal(msg.content[0].type, 'thinking');
  assert.equal(msg.content[0].thinking, 'The user wants a greeting; say hello.');
  assert.equal(msg.content[0].signature, 'mock-signature');
  assert.equal(thinking, 'The user wants a greeting; say hello.');
  const text = 'Hello from the scripted mock — héllo wörld, this text is long enough to span several deltas.';
  assert.equal(msg.content[1].text, text);
  assert.ok(deltas.length > 3, `expected several text deltas, got ${deltas.length}`);
  assert.equal(deltas.join(''), text);
  assert.equal(msg.usage.input_tokens, 42);
  assert.equal(msg.usage.output_tokens, 17);

  // The second turn is a tool call: the streamed input_json_delta pieces parse back
  // into the scripted input.
  const s2 = c.messages.stream({ model: 'claude-test', max_tokens: 100, messages: user('next') });
  const m2 = await s2.finalMessage();
  assert.equal(m2.stop_reason, 'tool_use');
  assert.equal(m2.content[1].type, 'tool_use');
  assert.equal(m2.content[1].id, 'toolu_fixed_1');
  assert.equal(m2.content[1].name, 'bash');
  assert.deepEqual(m2.content[1].input, {
    command: 'ls -la /tmp',
    timeout_ms: 5000,
    nested: { a: [1, 2, 'three'], b: null },
  });

  // Scripted errors become the SDK's APIError subclasses.
  await assert.rejects(
    c.messages.create({ model: 'claude-test', max_tokens: 10, messages: user('x') }),
    (e) => {
      assert.ok(e instanceof Anthropic.APIError);
      assert.ok(e instanceof Anthropic.InternalServerError);
      assert.equal(e.status, 529);
      assert.equal(e.error.error.type, 'overloaded_error');
      assert.match(e.requestID, /^req_/);
      return true;
    },
  );
  await assert.rejects(
    c.messages.create({ model: 'claude-test', max_tokens: 10, messages: user('x') }),
    (e) => {
      assert.ok(e instanceof Anthropic.RateLimitError);
      assert.equal(e.status, 429);
      assert.equal(e.headers.get('retry-after'), '7');
      assert.equal(e.error.error.message, 'slow down');
      return true;
    },
  );
  // "match" picks a turn by the last user text.
  const m5 = await c.messages.create({
    model: 'claude-test',
    max_tokens: 10,
    messages: user('could you echo please'),
  });
  assert.equal(m5.content[0].text, 'matched');
});

test('create(): non-streaming message with tool_use, generated ids, default usage', async (t) => {
  const mock = await startMockModel([
    {
      content: [
        { type: 'text', text: 'Calling a tool.' },
        { type: 'tool_use', name: 'lookup', input: { q: 'weather', n: 3 } },
      ],
    },
    { content: [{ type: 'text', text: 'done' }], stop_reason: 'max_tokens', usage: { output_tokens: 99 } },
  ]);
  t.after(() => mock.stop());
  const c = client(mock);
  const m = await c.messages.create({
    model: 'claude-x',
    max_tokens: 50,
    system: 'be brief',
    messages: user('what is the weather'),
  });
  assert.equal(m.type, 'message');
  assert.equal(m.stop_reason, 'tool_use');
  assert.equal(m.stop_sequence, null);
  assert.match(m.content[1].id, /^toolu_/);
  assert.deepEqual(m.content[1].input, { q: 'weather', n: 3 });
  assert.equal(m.usage.input_tokens, 10);
  assert.ok(m.usage.output_tokens > 0);

  const m2 = await c.messages.create({
    model: 'claude-x',
    max_tokens: 50,
    messages: [
      ...user('what is the weather'),
      { role: 'assistant', content: m.content },
      {
        role: 'user',
        content: [{ type: 'tool_result', tool_use_id: m.content[1].id, content: 'sunny' }],
      },
    ],
  });
  assert.equal(m2.stop_reason, 'max_tokens');
  assert.equal(m2.usage.output_tokens, 99);

  // The script is used up: a clear 500 that says so.
  await assert.rejects(
    c.messages.create({ model: 'claude-x', max_tokens: 5, messages: user('more') }),
    (e) => e instanceof Anthropic.InternalServerError && /script exhausted/.test(e.message),
  );

  // The mock recorded what it was sent (for assertions on request building).
  const reqs = await mock.requests();
  assert.equal(reqs.length, 3);
  assert.equal(reqs[0].body.system, 'be brief');
  assert.equal(reqs[0].has_api_key, true);
  assert.equal(reqs[0].turn, 0);
  assert.equal(reqs[1].body.messages[2].content[0].tool_use_id, m.content[1].id);
  assert.equal(reqs[2].turn, null);
});

test('retries: the SDK retries a 529 and a 429 and then gets the answer', async (t) => {
  const mock = await startMockModel([
    { error: { status: 529, type: 'overloaded_error', retry_after_ms: 10 } },
    { error: { status: 429, type: 'rate_limit_error', retry_after_ms: 10 } },
    { content: [{ type: 'text', text: 'third time lucky' }] },
  ]);
  t.after(() => mock.stop());
  const c = client(mock, { maxRetries: 2 });
  const m = await c.messages.stream({ model: 'm', max_tokens: 5, messages: user('go') }).finalMessage();
  assert.equal(m.content[0].text, 'third time lucky');
  assert.equal((await mock.requests()).length, 3);
});

test('mid-stream error event raises an APIError; bad requests get 400', async (t) => {
  const mock = await startMockModel({
    turns: [{ error: { status: 529, type: 'overloaded_error', message: 'busy', mid_stream: true } }],
    loop: true,
  });
  t.after(() => mock.stop());
  const c = client(mock);
  await assert.rejects(
    c.messages.stream({ model: 'm', max_tokens: 5, messages: user('go') }).finalMessage(),
    (e) => {
      assert.ok(e instanceof Anthropic.APIError);
      assert.equal(e.error.error.type, 'overloaded_error');
      return true;
    },
  );
  await assert.rejects(
    c.messages.create({ model: 'm', max_tokens: 5, messages: [] }),
    (e) => e instanceof Anthropic.BadRequestError && e.error.error.type === 'invalid_request_error',
  );
  const r = await fetch(`${mock.url}/v1/messages`, { method: 'POST', body: '{not json' });
  assert.equal(r.status, 400);
  const nf = await fetch(`${mock.url}/v1/models`);
  assert.equal(nf.status, 404);
  assert.equal((await nf.json()).error.type, 'not_found_error');
});

test('pacing: chunk_delay_ms spreads frames out; delay_ms holds the answer', async (t) => {
  const mock = await startMockModel([
    { delay_ms: 200, chunk_delay_ms: 20, chunk_size: 4, content: [{ type: 'text', text: 'abcdefghijkl' }] },
  ]);
  t.after(() => mock.stop());
  const c = client(mock);
  const pieces = [];
  const s = c.messages.stream({ model: 'm', max_tokens: 5, messages: user('go') });
  s.on('text', (d) => pieces.push(d));
  const m = await s.finalMessage();
  assert.deepEqual(pieces, ['abcd', 'efgh', 'ijkl']);
  assert.equal(m.content[0].text, 'abcdefghijkl');
});

test('bad scripts are refused at start with the turn named', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'airlock-mock-bad-'));
  const cases = [
    [[{ content: [{ type: 'text' }] }], /turn 0: content\[0\]/],
    [[{ content: [] }, { contnet: [] }], /turn 1: unknown key 'contnet'/],
    [[{ error: { status: 200, type: 'x' } }], /turn 0: error needs status/],
    [[], /list of 1\.\./],
  ];
  for (const [script, re] of cases) {
    const f = path.join(dir, 's.json');
    writeFileSync(f, JSON.stringify(script));
    const { code, stderr } = await runMockModelExpectingFailure(['--script', f]);
    assert.notEqual(code, 0);
    assert.match(stderr, re);
  }
  const y = path.join(dir, 's.yaml');
  writeFileSync(y, 'turns:\n  - content: [ {type: text, text: "x"}\n');
  const { code, stderr } = await runMockModelExpectingFailure(['--script', y]);
  assert.notEqual(code, 0);
  assert.match(stderr, /s\.yaml: line \d+/);
  const h = await runMockModelExpectingFailure(['--help']);
  assert.equal(h.code, 0);
});
