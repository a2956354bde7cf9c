// Starts `airlock mock-model` (a scripted stand-in for a model provider, not a model)
// for interop tests, and reads back what it was sent. Owner: agent loop tests.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const BIN = process.env.AIRLOCK_BIN;

// script: an array of turns / {turns, loop} object (written to a temp JSON file) or a
// path to a JSON/YAML script. Resolves to {url, port, requests(), stop(), proc}.
export async function startMockModel(script, { extraArgs = [] } = {}) {
  if (!BIN) throw new Error('AIRLOCK_BIN is not set (run through meson test)');
  const dir = mkdtempSync(path.join(tmpdir(), 'airlock-mock-'));
  let scriptPath = script;
  if (typeof script !== 'string') {
    scriptPath = path.join(dir, 'script.json');
    writeFileSync(scriptPath, JSON.stringify(script));
  }
  const proc = spawn(BIN, ['mock-model', '--listen', '127.0.0.1:0', '--script', scriptPath, ...extraArgs], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const port = await new Promise((resolve, reject) => {
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      log += d;
      const m = /listening port=(\d+)/.exec(log);
      if (m) resolve(Number(m[1]));
    });
    proc.on('exit', (code) => reject(new Error(`mock-model exited ${code}: ${log}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    proc,
    log: () => log,
    async requests() {
      const r = await fetch(`${url}/_mock/requests`);
      return (await r.json()).requests;
    },
    async stop() {
      if (proc.exitCode === null) {
        const done = new Promise((resolve) => proc.once('exit', resolve));
        proc.kill('SIGTERM');
        await done;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Runs `airlock mock-model` expecting it to refuse to start; resolves {code, stderr}.
export function runMockModelExpectingFailure(args) {
  return new Promise((resolve) => {
    const proc = spawn(BIN, ['mock-model', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => (stderr += d));
    proc.on('exit', (code) => resolve({ code, stderr }));
  });
}
