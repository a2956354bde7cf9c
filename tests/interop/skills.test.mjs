// The official SDK, unmodified, against a real `airlock server`: /v1/skills and its
// versions (create from a multipart bundle, list with pages, get, `latest`, delete,
// content download as a tar archive), the bundle rules (SKILL.md front matter, paths,
// sizes; nothing stored on a refusal), agents referencing skills, the SDK's own skill
// download (setupSkills, the code its EnvironmentWorker runs) with a sessions token,
// and the skills' metadata in the model's system prompt.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Anthropic, { toFile } from '@anthropic-ai/sdk';
import { setupSkills } from '@anthropic-ai/sdk/tools/agent-toolset/skills';
import { startServer } from './lib/server.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { collectEvents, endTurn, envWithKey, sessionsToken } from './lib/session.mjs';
import { all, rejectsStatus } from './lib/sdk.mjs';
import { startPollWorker, waitFor } from './lib/worker.mjs';
import { sandboxSkip } from './lib/hostprobe.mjs';

let srv;
let client;
let model;
let dataDir;

before(async () => {
  model = await startMockModel([{ content: [{ type: 'text', text: 'ok' }] }]);
  dataDir = mkdtempSync(path.join(tmpdir(), 'airlock-skills-'));
  srv = await startServer({ dataDir, env: { AIRLOCK_MODEL_BASE_URL: model.url } });
  client = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
});
after(async () => {
  await srv?.stop();
  await model?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const SKILL_MD = '---\nname: csv-helper\ndescription: Reads CSV files and\n  summarises them.\nlicense: MIT\n---\n# CSV helper\nRun scripts/run.sh.\n';
const RUN_SH = '#!/bin/sh\necho summarised\n';
const bundle = async (top = 'csv-helper', md = SKILL_MD, extra = []) => [
  await toFile(Buffer.from(md), `${top}/SKILL.md`, { type: 'text/markdown' }),
  await toFile(Buffer.from(RUN_SH), `${top}/scripts/run.sh`),
  ...extra,
];
const bundles = () => readdirSync(path.join(dataDir, 'skills')).sort();
const pending = () => readdirSync(path.join(dataDir, 'files', 'tmp'));

test('skills: create, get, list with pages, versions, latest, download, delete', async () => {
  const s = await client.beta.skills.create({ files: await bundle(), display_name: 'CSV helper' });
  assert.deepEqual(Object.keys(s).sort(), ['created_at', 'display_name', 'id', 'latest_version_id', 'source', 'type', 'updated_at']);
  assert.equal(s.type, 'skill');
  assert.match(s.id, /^skill_[A-Za-z0-9]{24}$/);
  assert.equal(s.display_name, 'CSV helper');
  assert.deepEqual(s.source, { type: 'custom' });
  assert.match(s.latest_version_id, /^\d{16}$/);
  assert.deepEqual(await client.beta.skills.retrieve(s.id), s);

  const v1 = await client.beta.skills.versions.retrieve('latest', { skill_id: s.id });
  assert.deepEqual(v1, { type: 'skill_version', id: s.latest_version_id, skill_id: s.id, name: 'csv-helper',
    description: 'Reads CSV files and summarises them.', created_at: s.created_at });
  // the archive a worker downloads holds the files byte for byte
  const dir = mkdtempSync(path.join(tmpdir(), 'airlock-skill-tar-'));
  try {
    const res = await client.beta.skills.versions.download(v1.id, { skill_id: s.id });
    writeFileSync(path.join(dir, 'b.tar'), Buffer.from(await res.arrayBuffer()));
    assert.deepEqual(execFileSync('tar', ['-tf', path.join(dir, 'b.tar')], { encoding: 'utf8' }).trim().split('\n').sort(),
      ['csv-helper/SKILL.md', 'csv-helper/scripts/run.sh']);
    execFileSync('tar', ['-xf', path.join(dir, 'b.tar'), '-C', dir]);
    assert.equal(readFileSync(path.join(dir, 'csv-helper/SKILL.md'), 'utf8'), SKILL_MD);
    assert.equal(readFileSync(path.join(dir, 'csv-helper/scripts/run.sh'), 'utf8'), RUN_SH);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // a second version becomes the latest; display_name belongs to the skill
  const md2 = SKILL_MD.replace('summarises them.', 'summarises them, v2.');
  const v2 = await client.beta.skills.versions.create(s.id, { files: await bundle('csv-helper', md2) });
  assert.equal(v2.description, 'Reads CSV files and summarises them, v2.');
  assert.ok(BigInt(v2.id) > BigInt(v1.id));
  assert.equal((await client.beta.skills.retrieve(s.id)).latest_version_id, v2.id);
  assert.equal((await client.beta.skills.versions.retrieve('latest', { skill_id: s.id })).id, v2.id);
  assert.deepEqual((await all(client.beta.skills.versions.list(s.id, { limit: 1 }))).map((v) => v.id), [v2.id, v1.id]);
  // deleting the latest version makes the one before it the latest
  assert.deepEqual(await client.beta.skills.versions.delete(v2.id, { skill_id: s.id }), { id: v2.id, type: 'skill_version_deleted' });
  assert.equal((await client.beta.skills.retrieve(s.id)).latest_version_id, v1.id);
  await rejectsStatus(client.beta.skills.versions.retrieve(v2.id, { skill_id: s.id }), 404);
  await rejectsStatus(client.beta.skills.versions.download(v2.id, { skill_id: s.id }), 404);

  const more = [];
  for (let i = 0; i < 3; i++)
    more.push((await client.beta.skills.create({ files: await bundle(`s${i}`, SKILL_MD.replace('csv-helper', `helper-${i}`)) })).id);
  assert.equal((await client.beta.skills.retrieve(more[0])).display_name, 'helper-0');
  const listed = await all(client.beta.skills.list({ limit: 2 }));
  assert.deepEqual(listed.map((x) => x.id), [...more].reverse().concat([s.id]));
  const p1 = await client.beta.skills.list({ limit: 2 });
  assert.equal(p1.data.length, 2);
  // GET /v1/skills says has_more as well (api.md 1.6)
  const raw = await (await fetch(`${srv.baseURL}/v1/skills?limit=2`, { headers: { 'x-api-key': srv.apiKey } })).json();
  assert.equal(raw.has_more, true);
  assert.equal((await (await fetch(`${srv.baseURL}/v1/skills?limit=100`, { headers: { 'x-api-key': srv.apiKey } })).json()).has_more, false);

  for (const id of [s.id, ...more])
    assert.deepEqual(await client.beta.skills.delete(id), { id, type: 'skill_deleted' });
  await rejectsStatus(client.beta.skills.retrieve(s.id), 404);
  await rejectsStatus(client.beta.skills.versions.retrieve('latest', { skill_id: s.id }), 404);
  assert.deepEqual(bundles(), []);
});

test('skills: bad bundles are 400 (413 over the size) and store nothing', async () => {
  const before = bundles();
  const f = (name, body = 'x') => toFile(Buffer.from(body), name);
  const cases = [
    ['no SKILL.md', [await f('a/readme.md')], /SKILL\.md is required/],
    ['SKILL.md below the top', [await f('a/sub/SKILL.md', SKILL_MD)], /SKILL\.md is required/],
    ['no front matter', [await f('a/SKILL.md', '# hello\n')], /front matter/],
    ['unclosed front matter', [await f('a/SKILL.md', '---\nname: a\ndescription: b\n')], /not closed/],
    ['no description', [await f('a/SKILL.md', '---\nname: a\n---\n')], /description/],
    ['upper-case name', [await f('a/SKILL.md', '---\nname: Bad\ndescription: d\n---\n')], /lower-case/],
    ['reserved name', [await f('a/SKILL.md', '---\nname: claude-tools\ndescription: d\n---\n')], /reserved/],
    ['xml in description', [await f('a/SKILL.md', '---\nname: a\ndescription: <b>d</b>\n---\n')], /XML/],
    ['dot-dot', [await f('a/SKILL.md', SKILL_MD), await f('a/../../etc/cron.d/x')], /'\.\.'/],
    ['absolute', [await f('/etc/passwd')], /relative/],
    ['no top directory', [await f('SKILL.md', SKILL_MD)], /top-level directory/],
    ['two top directories', [await f('a/SKILL.md', SKILL_MD), await f('b/x')], /same top-level/],
    ['a path twice', [await f('a/SKILL.md', SKILL_MD), await f('a/SKILL.md', SKILL_MD)], /twice/],
    ['backslash', [await f('a/SKILL.md', SKILL_MD), await f('a\\..\\x')], /backslash/],
  ];
  for (const [name, files, re] of cases) {
    await assert.rejects(client.beta.skills.create({ files }), (err) => {
      assert.equal(err.status, 400, `${name}: ${err.message}`);
      assert.match(err.message, re, name);
      return true;
    });
  }
  await rejectsStatus(client.beta.skills.create({ files: await bundle('big', SKILL_MD, [await toFile(randomBytes(31 << 20), 'big/blob.bin')]) }), 413);
  await rejectsStatus(client.beta.skills.versions.create('skill_nosuchskill00000000000', { files: await bundle() }), 404);
  assert.deepEqual((await client.beta.skills.list()).data, []);
  assert.deepEqual(bundles(), before);
  assert.deepEqual(pending(), []);
});

test('agents reference skills; the SDK downloads them with a sessions token; the model sees them', async () => {
  const s = await client.beta.skills.create({ files: await bundle() });
  await rejectsStatus(client.beta.agents.create({ name: 'x', model: 'claude-x',
    skills: [{ type: 'custom', skill_id: 'skill_nosuchskill00000000000' }] }), 400, /not found/);
  await rejectsStatus(client.beta.agents.create({ name: 'x', model: 'claude-x',
    skills: [{ type: 'custom', skill_id: s.id, version: '1' }] }), 400, /version 1 not found/);
  const agent = await client.beta.agents.create({ name: 'with-skill', model: 'claude-x', system: 'You help with data.',
    skills: [{ type: 'custom', skill_id: s.id }] });
  assert.deepEqual(agent.skills, [{ type: 'custom', skill_id: s.id, version: 'latest' }]);

  const { env, envKey } = await envWithKey(srv, client, 'skills-env');
  const session = await client.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  const token = await sessionsToken(srv, env, envKey, session.id, 'skilltest');
  const tc = new Anthropic({ baseURL: srv.baseURL, authToken: token, apiKey: null, maxRetries: 0 });
  const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-skill-wd-')));
  try {
    const cleanup = await setupSkills({ client: tc, session: await tc.beta.sessions.retrieve(session.id), workdir });
    assert.equal(readFileSync(path.join(workdir, 'skills/csv-helper/SKILL.md'), 'utf8'), SKILL_MD);
    assert.equal(readFileSync(path.join(workdir, 'skills/csv-helper/scripts/run.sh'), 'utf8'), RUN_SH);
    await cleanup();
    assert.deepEqual(readdirSync(path.join(workdir, 'skills')), []);
  } finally {
    rmSync(workdir, { recursive: true, force: true });
  }
  // the token reaches only its agent's skills, and reads nothing else of them
  const other = await client.beta.skills.create({ files: await bundle('other', SKILL_MD.replace('csv-helper', 'other')) });
  await rejectsStatus(tc.beta.skills.versions.retrieve('latest', { skill_id: other.id }), 404);
  await rejectsStatus(tc.beta.skills.versions.download(other.latest_version_id, { skill_id: other.id }), 404);
  await rejectsStatus(tc.beta.skills.list(), 403);

  // the agent loop lists the skill in the system prompt, after the agent's own
  const seen = await collectEvents(client, session.id, endTurn);
  await client.beta.sessions.events.send(session.id, { events: [{ type: 'user.message', content: [{ type: 'text', text: 'hi' }] }] });
  await seen.done;
  const reqs = await model.requests();
  const system = reqs.at(-1).body?.system ?? reqs.at(-1).system;
  assert.equal(typeof system, 'string', JSON.stringify(reqs.at(-1)).slice(0, 400));
  assert.ok(system.startsWith('You help with data.\n\n'), system);
  assert.match(system, /<skill>\n<name>csv-helper<\/name>\n<description>Reads CSV files and summarises them\.<\/description>\n<location>skills\/csv-helper\/SKILL\.md<\/location>\n<\/skill>/);
});

// For the worker tests: on server srv, the skill of bundle(), an agent offered the whole
// toolset and that skill, an environment (named envName) with its key, and a session.
async function skilledSession(srv, envName) {
  const c = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
  const skill = await c.beta.skills.create({ files: await bundle() });
  const agent = await c.beta.agents.create({ name: 'skilled', model: 'claude-x',
    tools: [{ type: 'agent_toolset_20260401', default_config: { permission_policy: { type: 'always_allow' } } }],
    skills: [{ type: 'custom', skill_id: skill.id }] });
  const { env, envKey } = await envWithKey(srv, c, envName);
  const session = await c.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  return { client: c, env, envKey, session };
}

// Sends 'go-skill' (the scripts' cue to read the skill, then run its script) and waits
// for the turn to end: the tool results, in order.
async function goSkill(c, session) {
  const { done } = await collectEvents(c, session.id, endTurn, { timeoutMs: 60000 });
  await c.beta.sessions.events.send(session.id, { events: [{ type: 'user.message', content: [{ type: 'text', text: 'go-skill' }] }] });
  return (await done).filter((e) => e.type === 'user.tool_result');
}
const text = (r) => r.content.map((b) => b.text ?? '').join('');

// The SDK's EnvironmentWorker, unmodified, runs a session whose agent has the skill: it
// downloads the bundle with the item's sessions token into {workdir}/skills/<name>/, the
// agent's read and bash see its files, and the directory goes at teardown.
test('the SDK EnvironmentWorker runs a session with a skill from airlock', async (t) => {
  const { EnvironmentWorker } = await import('@anthropic-ai/sdk/lib/environments/worker');
  const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-skill-worker-')));
  const m2 = await startMockModel([
    { match: 'go-skill', content: [{ type: 'tool_use', name: 'read', input: { file_path: `${workdir}/skills/csv-helper/SKILL.md` } }] },
    { match: 'CSV helper', content: [{ type: 'tool_use', name: 'bash', input: { command: `cd ${workdir} && sh skills/csv-helper/scripts/run.sh` } }] },
    { content: [{ type: 'text', text: 'done' }] },
  ]);
  const s2 = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: m2.url } });
  const abort = new AbortController();
  t.after(async () => {
    abort.abort();
    await s2.stop();
    await m2.stop();
    rmSync(workdir, { recursive: true, force: true });
  });
  const { client: c2, env, envKey, session } = await skilledSession(s2, 'skill-worker');
  const worker = new EnvironmentWorker({
    client: new Anthropic({ baseURL: s2.baseURL, apiKey: 'unused-by-worker' }),
    environmentId: env.id, environmentKey: envKey, workdir, maxIdleMs: 1500,
  });
  const running = worker.run(abort.signal).catch((e) => {
    if (!abort.signal.aborted) throw e;
  });
  const results = await goSkill(c2, session);
  assert.equal(results.length, 2, JSON.stringify(results));
  for (const r of results) assert.equal(r.is_error, false, text(r));
  assert.match(text(results[0]), /CSV helper/);
  assert.match(text(results[1]), /summarised/);
  // the item ends once the session is idle: the worker removes the skill's directory
  const dir = path.join(workdir, 'skills', 'csv-helper');
  for (let i = 0; i < 150 && existsSync(dir); i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(existsSync(dir), false, 'skill directory left after the item ended');
  abort.abort();
  await running;
});

// `airlock worker` the same way: it unpacks the skill into <workspace>/skills/<name>/
// before the first tool call (read and bash see it), and removes it when the item ends.
// Sandboxed where this host can make sandboxes, unsandboxed always.
for (const sandboxed of [false, true]) {
  test(`airlock worker${sandboxed ? '' : ' --unsandboxed'} runs a session with a skill from airlock`,
    { skip: sandboxed ? sandboxSkip() : false }, async (t) => {
      const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-skill-aw-')));
      chmodSync(workdir, 0o755); // the worker drops to its own user
      const m3 = await startMockModel([
        { match: 'go-skill', content: [{ type: 'tool_use', name: 'read', input: { file_path: 'skills/csv-helper/SKILL.md' } }] },
        { match: 'CSV helper', content: [{ type: 'tool_use', name: 'bash', input: { command: 'sh skills/csv-helper/scripts/run.sh && ls -la skills/csv-helper/scripts' } }] },
        { content: [{ type: 'text', text: 'done' }] },
      ]);
      const s3 = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: m3.url } });
      let worker;
      t.after(async () => {
        worker?.proc.kill('SIGKILL');
        await s3.stop();
        await m3.stop();
        rmSync(workdir, { recursive: true, force: true });
      });
      const { client: c3, env, envKey, session } = await skilledSession(s3, 'skill-aw');
      worker = startPollWorker({ baseURL: s3.baseURL, environmentId: env.id, envKey, workdir,
        args: ['--max-idle', '3s', ...(sandboxed ? [] : ['--unsandboxed'])] });
      const results = await goSkill(c3, session);
      assert.equal(results.length, 2, `${JSON.stringify(results)}\n${worker.log()}`);
      for (const r of results) assert.equal(r.is_error, false, `${text(r)}\n${worker.log()}`);
      assert.match(text(results[0]), /CSV helper/);
      assert.match(text(results[1]), /summarised/);
      assert.match(worker.log(), /downloaded skill/);
      // the item ends once the session is idle (--max-idle): the skill goes with it
      // every item that unpacked it has ended (the session may have had more than one)
      const count = (re) => (worker.log().match(re) ?? []).length;
      await waitFor(() => count(/work item finished/g) >= Math.max(1, count(/downloaded skill/g)),
        'the items to end', 30000, worker.log);
      // (a later item of the session may unpack it again for a moment: wait that out)
      const leftover = () => execFileSync('find', [workdir, '-path', '*/skills/csv-helper*'], { encoding: 'utf8' });
      await waitFor(() => leftover() === '', 'the skill files to go', 15000, () => `${leftover()}\n${worker.log()}`);
    });
}
