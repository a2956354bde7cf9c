// `airlock worker` with the session's memory stores and the agent's skill (issue 15):
// the stores are copied into <workspace>/memory/<name>/ before the first tool call, the
// agent's read sees the store's memory, its write (a new file) and edit (in place) come
// back as versions by the session, a read_only store's copy cannot be written (the write
// fails inside the sandbox) and the store stays untouched, the skill's files are there,
// and the copies go when the item ends. Sandboxed where this host can make sandboxes,
// unsandboxed always.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Anthropic, { toFile } from '@anthropic-ai/sdk';
import { startServer } from './lib/server.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { collectEvents, endTurn, envWithKey, textOf } from './lib/session.mjs';
import { all } from './lib/sdk.mjs';
import { startPollWorker, waitFor } from './lib/worker.mjs';
import { sandboxSkip } from './lib/hostprobe.mjs';

const SKILL_MD = '---\nname: csv-helper\ndescription: Reads CSV files.\n---\n# CSV helper\n';

// A server whose mock model plays script, a workdir the worker (dropping to its own
// user) can reach, and an agent with every tool allowed; all of it gone after t.
async function setup(t, script, withSkill = false) {
  const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-wmem-')));
  chmodSync(workdir, 0o755);
  const model = await startMockModel(script);
  const srv = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url } });
  const ctx = { workdir, srv, worker: null };
  t.after(async () => {
    ctx.worker?.proc.kill('SIGKILL');
    await srv.stop();
    await model.stop();
    rmSync(workdir, { recursive: true, force: true });
  });
  ctx.c = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
  const skill = withSkill
    ? await ctx.c.beta.skills.create({ files: [await toFile(Buffer.from(SKILL_MD), 'csv-helper/SKILL.md')] })
    : null;
  ctx.agent = await ctx.c.beta.agents.create({ name: 'memsync', model: 'claude-x',
    tools: [{ type: 'agent_toolset_20260401', default_config: { permission_policy: { type: 'always_allow' } } }],
    skills: skill ? [{ type: 'custom', skill_id: skill.id }] : [] });
  Object.assign(ctx, await envWithKey(srv, ctx.c, 'wmem'));
  ctx.start = (args) => (ctx.worker = startPollWorker({ baseURL: srv.baseURL, environmentId: ctx.env.id,
    envKey: ctx.envKey, workdir, args: ['--max-idle', '3s', ...args] }));
  return ctx;
}

for (const sandboxed of [false, true]) {
  test(`airlock worker${sandboxed ? '' : ' --unsandboxed'} syncs memory stores and sees the skill`,
    { skip: sandboxed ? sandboxSkip() : false }, async (t) => {
      const tag = Math.random().toString(36).slice(2, 8);
      const rwDir = `memory/sync-rw-${tag}`;
      const roDir = `memory/sync-ro-${tag}`;
      const { c, agent, env, start, workdir } = await setup(t, [
        { match: 'go-memory', content: [{ type: 'tool_use', name: 'read', input: { file_path: `${rwDir}/notes.md` } }] },
        { match: 'hello from the store', content: [{ type: 'tool_use', name: 'write', input: { file_path: `${rwDir}/learned/today.md`, content: 'learned\n' } }] },
        { match: 'today.md', content: [{ type: 'tool_use', name: 'edit', input: { file_path: `${rwDir}/notes.md`, old_string: 'hello', new_string: 'goodbye' } }] },
        { match: 'edited', content: [{ type: 'tool_use', name: 'write', input: { file_path: `${roDir}/ref.md`, content: 'overwritten\n' } }] },
        { match: 'ref.md', content: [{ type: 'tool_use', name: 'bash', input: { command: `cat ${roDir}/ref.md; echo changed > ${roDir}/new.md; echo "rc=$?"; cat skills/csv-helper/SKILL.md` } }] },
        { content: [{ type: 'text', text: 'done' }] },
      ], true);
      const rw = await c.beta.memoryStores.create({ name: `sync rw ${tag}` });
      const ro = await c.beta.memoryStores.create({ name: `sync ro ${tag}` });
      const mems = c.beta.memoryStores.memories;
      const notes = await mems.create(rw.id, { path: '/notes.md', content: 'hello from the store\n' });
      await mems.create(ro.id, { path: '/ref.md', content: 'reference\n' });
      const session = await c.beta.sessions.create({ agent: agent.id, environment_id: env.id, resources: [
        { type: 'memory_store', memory_store_id: rw.id },
        { type: 'memory_store', memory_store_id: ro.id, access: 'read_only' },
      ] });
      const worker = start(sandboxed ? [] : ['--unsandboxed']);
      const { done } = await collectEvents(c, session.id, endTurn, { timeoutMs: 60000 });
      await c.beta.sessions.events.send(session.id, { events: [{ type: 'user.message', content: [{ type: 'text', text: 'go-memory' }] }] });
      const events = await done;
      const results = events.filter((e) => e.type === 'user.tool_result');
      const text = (r) => textOf(r.content);
      assert.equal(results.length, 5, `${JSON.stringify(results)}\n${worker.log()}`);
      for (const i of [0, 1, 2, 4]) assert.equal(results[i].is_error, false, `${i}: ${text(results[i])}\n${worker.log()}`);
      assert.match(text(results[0]), /hello from the store/);
      // the read_only copy: the write tool refuses it (as the SDK's tools do) ...
      assert.equal(results[3].is_error, true, text(results[3]));
      assert.match(text(results[3]), /read-only/i);
      assert.match(text(results[4]), /^reference\n/);
      // ... and in the sandbox a shell's redirection fails too (the copy is sealed);
      // unsandboxed, bash runs with the worker's own rights (root may write anything),
      // and what follows shows that nothing of it reaches the store
      if (sandboxed) assert.match(text(results[4]), /rc=[1-9]/);
      assert.match(text(results[4]), /# CSV helper/);
      assert.match(worker.log(), /memory store downloaded/);

      // the last sync runs when the item ends (--max-idle): wait for the writes to land
      await waitFor(() => /work item finished/.test(worker.log()), 'the item to end', 30000, worker.log);
      const listed = await all(mems.list(rw.id, { view: 'full', limit: 20 }));
      assert.equal(listed.find((m) => m.path === '/learned/today.md')?.content, 'learned\n', worker.log());
      const n = listed.find((m) => m.path === '/notes.md');
      assert.equal(n.id, notes.id); // updated in place, under its precondition
      assert.equal(n.content, 'goodbye from the store\n');
      const vs = await all(c.beta.memoryStores.memoryVersions.list(rw.id, { session_id: session.id }));
      assert.deepEqual(vs.map((v) => v.operation).sort(), ['created', 'modified']);
      assert.ok(vs.every((v) => v.created_by.type === 'session_actor' && v.created_by.session_id === session.id));
      // the read_only store is untouched: one memory, one version
      const roList = await all(mems.list(ro.id, { view: 'full' }));
      assert.deepEqual(roList.map((m) => [m.path, m.content]), [['/ref.md', 'reference\n']]);
      assert.equal((await all(c.beta.memoryStores.memoryVersions.list(ro.id))).length, 1);
      // the copies go with the item
      const leftover = () => execFileSync('find', [workdir, '-path', '*/memory/sync-*'], { encoding: 'utf8' });
      await waitFor(() => leftover() === '', 'the copies to go', 15000, () => `${leftover()}\n${worker.log()}`);
    });
}

// The pass between tool calls (15 s after the download, brought by a timer after the
// first call): a local edit made while the store changed the same memory loses to the
// store (logged), a new local file is created, a memory added to the store meanwhile is
// pulled, one the store deleted while it was edited here is created again, all before
// the item ends; a file removed here is deleted in the store only by the last pass (it
// was missing for less than 30 s at the one before). The sync runs on the host either way: unsandboxed.
test('airlock worker syncs during the session: the store wins a conflict, new files go both ways', async (t) => {
  const tag = Math.random().toString(36).slice(2, 8);
  const dir = `memory/mid-${tag}`;
  const { c, agent, env, start } = await setup(t, [
    { match: 'go-mid', content: [{ type: 'tool_use', name: 'bash', input: { command: `printf local > ${dir}/notes.md && printf mine > ${dir}/a.md && printf edited > ${dir}/gone.md && rm ${dir}/old.md && echo step1` } }] },
    { match: 'step1', content: [{ type: 'tool_use', name: 'bash', input: { command: `sleep 20; cat ${dir}/notes.md; echo; cat ${dir}/b.md; echo; echo step2` } }] },
    { content: [{ type: 'text', text: 'done' }] },
  ]);
  const st = await c.beta.memoryStores.create({ name: `mid ${tag}` });
  const mems = c.beta.memoryStores.memories;
  const notes = await mems.create(st.id, { path: '/notes.md', content: 'v1' });
  const gone = await mems.create(st.id, { path: '/gone.md', content: 'g1' });
  await mems.create(st.id, { path: '/old.md', content: 'o1' });
  const session = await c.beta.sessions.create({ agent: agent.id, environment_id: env.id,
    resources: [{ type: 'memory_store', memory_store_id: st.id }] });
  const worker = start(['--unsandboxed']);
  const { done } = await collectEvents(c, session.id, endTurn, { timeoutMs: 90000 });
  await c.beta.sessions.events.send(session.id, { events: [{ type: 'user.message', content: [{ type: 'text', text: 'go-mid' }] }] });
  // after the download, the store changes: the same memory, and a new one
  await waitFor(() => /memory store downloaded/.test(worker.log()), 'the download', 30000, worker.log);
  await mems.update(notes.id, { memory_store_id: st.id, content: 'remote' });
  await mems.create(st.id, { path: '/b.md', content: 'from-store' });
  await mems.delete(gone.id, { memory_store_id: st.id });
  const events = await done;
  const results = events.filter((e) => e.type === 'user.tool_result');
  assert.equal(results.length, 2, `${JSON.stringify(results)}\n${worker.log()}`);
  // the second call saw the pass's work: the store's version, and the pulled memory
  assert.equal(textOf(results[1].content), 'remote\nfrom-store\nstep2', worker.log());
  assert.match(worker.log(), /the store's version wins/);
  // the item is still live (--max-idle): a.md came with the pass, not the last sync
  assert.doesNotMatch(worker.log(), /work item finished/);
  const listed = await all(mems.list(st.id, { view: 'full' }));
  assert.deepEqual(listed.map((m) => [m.path, m.content]),
    [['/a.md', 'mine'], ['/b.md', 'from-store'], ['/gone.md', 'edited'], ['/notes.md', 'remote'], ['/old.md', 'o1']]);
  // (old.md, removed by the first call, was missing for less than 30 s at that pass: a
  // file being replaced is not a delete; the last pass, with the sandbox gone, sends it)
  await waitFor(() => /work item finished/.test(worker.log()), 'the item to end', 30000, worker.log);
  // the local edit that lost was never sent: the session wrote a.md, and gone.md again
  // (deleted in the store while edited here: the file was the only copy, as the SDK does)
  const vs = await all(c.beta.memoryStores.memoryVersions.list(st.id, { session_id: session.id }));
  assert.deepEqual(vs.map((v) => [v.path, v.operation]).sort(),
    [['/a.md', 'created'], ['/gone.md', 'created'], ['/old.md', 'deleted']]);
  assert.deepEqual((await all(mems.list(st.id))).map((m) => m.path), ['/a.md', '/b.md', '/gone.md', '/notes.md']);
  assert.match(worker.log(), /creating it again from the file/);
});
