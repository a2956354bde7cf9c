// Starts `airlock worker poll` for interop tests and keeps its stderr; a bounded wait.
import { spawn } from 'node:child_process';

// Returns {proc, log(), exited} where exited resolves to {code, sig}.
export function startPollWorker({ baseURL, environmentId, envKey, workdir, args = [] }) {
  const proc = spawn(
    process.env.AIRLOCK_BIN,
    ['worker', 'poll', '--environment-id', environmentId, '--workdir', workdir, ...args],
    {
      env: { ...process.env, ANTHROPIC_ENVIRONMENT_KEY: envKey, ANTHROPIC_BASE_URL: baseURL },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let log = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => (log += d));
  const exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve({ code, sig })));
  return { proc, log: () => log, exited };
}

// Polls cond() every 100 ms; throws after ms with what and describe()'s text.
export async function waitFor(cond, what, ms, describe = () => '') {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}\n${describe()}`);
}
