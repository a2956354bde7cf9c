// The host probe for interop tests that start a sandboxed worker: `airlock worker check`
// (lib/sandbox/hostprobe.c and sandbox_preflight) says whether sandboxes can be made on
// this host. A test passes the result as node:test's `skip` option, so that a host
// without namespaces or cgroups reports a skip with the reason instead of a failure
// (tests/README.md).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

let cached;

// false when sandboxed workers can run here; else the reason (the check's fail lines).
export function sandboxSkip() {
  if (cached !== undefined) return cached;
  const stateDir = mkdtempSync(path.join(tmpdir(), 'airlock-probe-'));
  try {
    // Nothing listens on port 9: the check's server part fails, its sandbox lines stay.
    const r = spawnSync(process.env.AIRLOCK_BIN, ['worker', 'check', '--environment-id', 'env_probe',
      '--environment-key', 'k', '--base-url', 'http://127.0.0.1:9', '--workdir', stateDir], {
      env: { ...process.env, AIRLOCK_SANDBOX_STATE_DIR: stateDir },
      encoding: 'utf8',
      timeout: 30000,
    });
    const fails = (r.stdout ?? '').split('\n').filter((l) => l.startsWith('fail '));
    cached = fails.length ? `sandboxes cannot be created here: ${fails.join('; ')}` : false;
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
  return cached;
}
