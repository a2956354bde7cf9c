// Differential test: the same corpus of tool calls through the official SDK's agent toolset
// (@anthropic-ai/sdk/tools/agent-toolset/node, run the way its session runner runs it) and
// through airlock's C toolset (tests/unit/tools/tool_driver), in two identical workspaces.
// Result text and is_error must match, after replacing each side's workspace path with
// $WORKDIR. Cases with an "ours" entry are documented differences (docs/worker/tools.md §8):
// there our result must equal that entry instead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { betaAgentToolset20260401 } from '@anthropic-ai/sdk/tools/agent-toolset/node';
import { runRunnableTool } from '@anthropic-ai/sdk/lib/tools/BetaRunnableTool';

const here = path.dirname(new URL(import.meta.url).pathname);
const cases = JSON.parse(fs.readFileSync(path.join(here, 'toolset-corpus', 'cases.json'), 'utf8'));
const driverPath = process.env.AIRLOCK_TOOL_DRIVER;
const haveFsGlob = typeof fsp.glob === 'function';

function makeFixture(side) {
  const work = path.join(side, 'work');
  const ro = path.join(side, 'ro');
  fs.mkdirSync(path.join(work, 'sub', 'deep'), { recursive: true });
  fs.mkdirSync(ro, { recursive: true });
  const w = (p, data, mode) => fs.writeFileSync(path.join(work, p), data, mode ? { mode } : {});
  w('f.txt', 'line1\nline2\nline3\n');
  w('f2.txt', 'old\n');
  w('dup.txt', 'foo bar foo baz foo\n');
  w('aaa.txt', 'aaaaa');
  w('crlf.txt', 'one\r\ntwo\r\n');
  w('empty.txt', '');
  w('utf8.txt', 'héllo wörld ✓ 😀\n');
  w('bin.dat', Buffer.from([0, 0xff, 0xfe, 0x41, 0xc3, 0x0a, 0xe2, 0x82, 0x41, 0xf0, 0x9f, 0x98]));
  w('big.txt', Array.from({ length: 5000 }, (_, i) => `line ${i + 1} ${'x'.repeat(60)}\n`).join(''));
  w('oneline.txt', 'y'.repeat(300 * 1024));
  w('many.txt', Array.from({ length: 5000 }, (_, i) => `match number ${i} padding padding\n`).join(''));
  w('sub/inner.txt', 'needle here\n');
  w('sub/deep/x.txt', 'another needle\n');
  w('sub/readme.md', 'needle md\n');
  w('mode.sh', '#!/bin/sh\n', 0o755);
  fs.chmodSync(path.join(work, 'mode.sh'), 0o755);
  w('plain', 'p');
  w('.hidden.txt', 'h');
  fs.mkdirSync(path.join(work, 'sub', '.dotdir'));
  w('sub/.dotdir/y.txt', 'y');
  fs.mkdirSync(path.join(work, 'node_modules'));
  w('node_modules/z.txt', 'z');
  fs.mkdirSync(path.join(work, '.git'));
  w('.git/config.txt', 'g');
  fs.symlinkSync('f.txt', path.join(work, 'link_txt.txt'));
  fs.symlinkSync('sub', path.join(work, 'link_sub'));
  fs.symlinkSync('f.txt', path.join(work, 'link_in'));
  fs.symlinkSync('/etc', path.join(work, 'link_out'));
  fs.symlinkSync('/nonexistent-airlock-dir/x', path.join(work, 'link_dangling'));
  fs.symlinkSync('loop_b', path.join(work, 'loop_a'));
  fs.symlinkSync('loop_a', path.join(work, 'loop_b'));
  execFileSync('mkfifo', [path.join(work, 'fifo')]);
  fs.writeFileSync(path.join(side, 'outside.txt'), 'secret\n');
  fs.writeFileSync(path.join(ro, 'note.txt'), 'ro\n');
  return { work, ro };
}

function subst(v, dirs) {
  if (typeof v === 'string') return v.replaceAll('$WORKDIR', dirs.work).replaceAll('$RO', dirs.ro);
  if (Array.isArray(v)) return v.map((x) => subst(x, dirs));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, subst(x, dirs)]));
  return v;
}

function normalize(r, dirs, c) {
  let text = r.text.replaceAll(dirs.work, '$WORKDIR').replaceAll(dirs.ro, '$RO');
  if (c.sort_lines) text = text.split('\n').sort().join('\n');
  return { is_error: r.is_error, text };
}

// The SDK side: the tool's run() through the SDK's own runRunnableTool, then the session
// runner's rule that empty text becomes "(no output)", then the control plane's: a NUL
// is stored as U+FFFD (docs/decisions.md), which airlock's worker does before sending.
async function runSdk(tools, c, dirs) {
  const tool = tools[c.tool];
  const outcome = await runRunnableTool(tool, subst(c.input, dirs), { signal: new AbortController().signal });
  const content = outcome.content;
  const text = typeof content === 'string' ? content : content.map((b) => b.text).join('');
  return { is_error: outcome.isError, text: (text || '(no output)').replaceAll('\u0000', '\uFFFD') };
}

// A short account of where two results part, instead of a dump of 100 KiB texts.
function assertSame(actual, expected, what) {
  if (actual.is_error === expected.is_error && actual.text === expected.text) return;
  let i = 0;
  while (i < actual.text.length && actual.text[i] === expected.text[i]) i++;
  const at = (s) => JSON.stringify(s.slice(Math.max(0, i - 40), i + 40));
  assert.fail(
    `${what}: is_error ${actual.is_error} vs ${expected.is_error}; lengths ${actual.text.length} vs ` +
      `${expected.text.length}; first difference at ${i}: ours ${at(actual.text)} expected ${at(expected.text)}`,
  );
}

class Driver {
  constructor(dirs) {
    this.proc = spawn(driverPath, ['--ro', dirs.ro, dirs.work], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.lines = readline.createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
  }
  async run(c, dirs) {
    this.proc.stdin.write(JSON.stringify({ tool: c.tool, input: subst(c.input, dirs) }) + '\n');
    const { value, done } = await this.lines.next();
    assert.ok(!done, 'tool_driver exited');
    return JSON.parse(value);
  }
  close() {
    this.proc.stdin.end();
  }
}

test('agent toolset: airlock matches the official SDK', { skip: !driverPath && 'AIRLOCK_TOOL_DRIVER not set' }, async (t) => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'al-toolset-'));
  const sdkDirs = makeFixture(path.join(base, 'sdk'));
  const ourDirs = makeFixture(path.join(base, 'ours'));
  const tools = Object.fromEntries(
    betaAgentToolset20260401({ workdir: sdkDirs.work, allowedRoots: [sdkDirs.ro], readOnlyRoots: [sdkDirs.ro] })
      .map((tool) => [tool.name, tool]),
  );
  const driver = new Driver(ourDirs);
  let compared = 0;
  try {
    for (const c of cases) {
      const skip = c.tool === 'glob' && !haveFsGlob && c.input.pattern && !c.input.pattern.startsWith('/') && !c.input.pattern.includes('..') && 'fs.glob needs Node 22';
      await t.test(c.name, { skip }, async () => {
        const sdk = normalize(await runSdk(tools, c, sdkDirs), sdkDirs, c);
        const ours = normalize(await driver.run(c, ourDirs), ourDirs, c);
        if (c.ours) {
          assert.notDeepEqual(sdk, c.ours, 'documented difference no longer differs: drop "ours"');
          assertSame(ours, c.ours, 'documented difference');
        } else {
          assertSame(ours, sdk, 'airlock vs SDK');
        }
        compared++;
      });
    }
  } finally {
    driver.close();
    tools.bash.close?.();
    fs.rmSync(base, { recursive: true, force: true });
  }
  assert.ok(compared >= 100, `only ${compared} cases compared`);
});
