// Tool output the JSON of a result cannot carry as-is, and results the server refuses.
// A NUL byte in bash output (binary output: `cat` of a file, /proc/*/cmdline) reaches the
// session as U+FFFD from both airlock's worker and the SDK's EnvironmentWorker, and the
// session completes. A result the server refuses still ends its call (with an error), so
// no later work item runs the call again: the test counts the call's side effect (a line
// appended to a file) across a second user turn. Issue 11, finding 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { EnvironmentWorker } from '@anthropic-ai/sdk/lib/environments/worker';
import { startServer } from './lib/server.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { setupSession, collectEvents, endTurn, textOf } from './lib/session.mjs';

// One bash call whose output holds NULs and which appends one line to runs.txt, then
// one closing text per user turn.
const CMD = "printf 'a\\0b\\0'; echo run >> runs.txt; echo end";
const script = [
  { content: [{ type: 'tool_use', name: 'bash', input: { command: CMD } }] },
  { content: [{ type: 'text', text: 'first done' }] },
  { content: [{ type: 'text', text: 'second done' }] },
];

function startWorker(baseURL, env, envKey, workdir) {
  const proc = spawn(
    process.env.AIRLOCK_BIN,
    ['worker', 'poll', '--environment-id', env.id, '--workdir', workdir, '--max-idle', '2s',
      '--log-format', 'json'],
    {
      env: { ...process.env, ANTHROPIC_ENVIRONMENT_KEY: envKey, ANTHROPIC_BASE_URL: baseURL },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let log = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => (log += d));
  return { proc, log: () => log };
}

async function fixture(t) {
  const model = await startMockModel(script);
  const srv = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url } });
  const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-nul-')));
  chmodSync(workdir, 0o711); // a root worker runs as an unprivileged user, who must reach it
  const cleanup = [];
  t.after(async () => {
    for (const f of cleanup.reverse()) await f();
    await srv.stop();
    await model.stop();
    rmSync(workdir, { recursive: true, force: true });
  });
  const s = await setupSession(srv);
  return { model, srv, workdir, cleanup, ...s };
}

async function turn(client, sessionId, text) {
  const { done } = await collectEvents(client, sessionId, endTurn, { timeoutMs: 30000 });
  await client.beta.sessions.events.send(sessionId, {
    events: [{ type: 'user.message', content: [{ type: 'text', text }] }],
  });
  return done;
}

// The session's workspace is <workdir>/sessions/<session id> (kept while it is idle).
const runs = (workdir, sid) => {
  const f = path.join(workdir, 'sessions', sid, 'runs.txt');
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).length : 0;
};

function checkNulTurn(events, log) {
  assert.equal(events.at(-1)?.type, 'session.status_idle', `turn did not end; worker log:\n${log}`);
  const use = events.find((e) => e.type === 'agent.tool_use');
  const res = events.find((e) => e.type === 'user.tool_result' && e.tool_use_id === use.id);
  assert.ok(res, `no result for the bash call; worker log:\n${log}`);
  assert.equal(res.is_error, false);
  // U+0000 reaches the session as U+FFFD, whichever worker sent it
  assert.equal(textOf(res.content), 'a\uFFFDb\uFFFDend');
}

test('airlock worker: NUL in bash output is delivered as U+FFFD and the session completes', async (t) => {
  const f = await fixture(t);
  const w = startWorker(f.srv.baseURL, f.env, f.envKey, f.workdir);
  f.cleanup.push(() => w.proc.kill('SIGKILL'));
  checkNulTurn(await turn(f.client, f.session.id, 'go'), w.log());
  const second = await turn(f.client, f.session.id, 'again');
  assert.equal(second.at(-1)?.type, 'session.status_idle');
  assert.equal(runs(f.workdir, f.session.id), 1, 'the call ran more than once');
});

test('SDK EnvironmentWorker: NUL in bash output is stored as U+FFFD and the session completes', async (t) => {
  const f = await fixture(t);
  const abort = new AbortController();
  const worker = new EnvironmentWorker({
    client: new Anthropic({ baseURL: f.srv.baseURL, apiKey: 'unused-by-worker' }),
    environmentId: f.env.id,
    environmentKey: f.envKey,
    workdir: f.workdir,
    maxIdleMs: 2000,
    memorySyncIntervalMs: null,
  });
  const running = worker.run(abort.signal).catch((e) => {
    if (!abort.signal.aborted) throw e;
  });
  f.cleanup.push(async () => {
    abort.abort();
    await running;
  });
  checkNulTurn(await turn(f.client, f.session.id, 'go'), f.srv.log());
  // the history (SQLite) holds the same text the stream delivered
  const hist = await f.client.beta.sessions.events.list(f.session.id);
  const res = hist.data.find((e) => e.type === 'user.tool_result');
  assert.equal(textOf(res.content), 'a\uFFFDb\uFFFDend');
});

// A proxy between the worker and the server that spoils the worker's tool results:
// 'once' replaces the first result's body with bytes that are not JSON (the server
// cannot tell which call it was for); 'always' makes every result for the call invalid
// (content not an array), so only the server can end the call.
function startSpoiler(upstream, mode) {
  const target = new URL(upstream);
  let spoiled = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      const isResult = req.method === 'POST' && /\/events$/.test(req.url) &&
        body.includes('"user.tool_result"');
      if (isResult && (mode === 'always' || spoiled === 0)) {
        spoiled++;
        if (mode === 'once') {
          body = Buffer.from('{"events":[{"type":"user.tool_result",');
        } else {
          const j = JSON.parse(body);
          j.events[0].content = 'not an array';
          body = Buffer.from(JSON.stringify(j));
        }
      }
      const headers = { ...req.headers, host: target.host, 'content-length': body.length };
      delete headers['transfer-encoding'];
      const up = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers },
        (ur) => {
          res.writeHead(ur.statusCode, ur.headers);
          ur.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      res.on('close', () => up.destroy());
      up.end(body);
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        spoiled: () => spoiled,
        stop: () => new Promise((r) => {
          server.closeAllConnections();
          server.close(r);
        }),
      }),
    );
  });
}

for (const mode of ['once', 'always']) {
  test(`a refused result ends its call and the call never runs again (${mode})`, async (t) => {
    const f = await fixture(t);
    const proxy = await startSpoiler(f.srv.baseURL, mode);
    f.cleanup.push(proxy.stop);
    const w = startWorker(proxy.url, f.env, f.envKey, f.workdir);
    f.cleanup.push(() => w.proc.kill('SIGKILL'));

    const first = await turn(f.client, f.session.id, 'go');
    assert.ok(proxy.spoiled() >= 1, 'the proxy spoiled no result');
    assert.equal(first.at(-1)?.type, 'session.status_idle', `turn 1 did not end:\n${w.log()}`);
    const use = first.find((e) => e.type === 'agent.tool_use');
    const answers = first.filter((e) => e.tool_use_id === use.id && /tool_result$/.test(e.type));
    assert.equal(answers.length, 1, JSON.stringify(answers));
    assert.equal(answers[0].is_error, true);
    assert.match(textOf(answers[0].content), /rejected its result.*not run again/);
    // the model was told: its next request carries the error result for the call
    const reqs = await f.model.requests();
    assert.match(JSON.stringify(reqs.at(-1)), /rejected its result/);

    // A later turn starts a new work item; the call stays answered and does not run.
    const second = await turn(f.client, f.session.id, 'again');
    assert.equal(second.at(-1)?.type, 'session.status_idle', w.log());
    assert.equal(textOf(second.filter((e) => e.type === 'agent.message').at(-1)?.content), 'second done');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(runs(f.workdir, f.session.id), 1, `the call ran ${runs(f.workdir, f.session.id)} times:\n${w.log()}`);
  });
}
