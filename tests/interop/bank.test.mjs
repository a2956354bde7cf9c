// The flagship governance scenario end to end (tests/interop/lib/bank_scenario.mjs): an
// auditor's session runs Python over confidential CSV files in the worker's sandbox and
// queries a real PostgreSQL through an airlock tunnel whose route requires the agent
// identity token; an intern's session of the same agent is never offered bash or the
// database tool and is refused both; every step is in an audit log that verifies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBank, CSV } from './lib/bank_scenario.mjs';
import { sandboxSkip } from './lib/hostprobe.mjs';
import { postgresSkip } from './lib/postgres.mjs';

const skip = sandboxSkip() || postgresSkip() || false;

test('bank: auditors audit through the sandbox and the tunnel; interns are refused', { skip }, async (t) => {
  const r = await runBank();
  t.after(() => r.cleanup());
  const byType = (evs, type) => evs.filter((e) => e.type === type);
  const resultOf = (evs, id) => evs.find((e) => (e.tool_use_id ?? e.mcp_tool_use_id) === id &&
    ['user.tool_result', 'agent.tool_result', 'agent.mcp_tool_result'].includes(e.type));
  const text = (e) => (e?.content ?? []).map((c) => c.text ?? '').join('');

  // alice: write, write, bash (python over the CSV), the ledger query through the tunnel
  const a = r.alice.events;
  const uses = [...byType(a, 'agent.tool_use'), ...byType(a, 'agent.mcp_tool_use')];
  assert.deepEqual(uses.map((u) => u.name), ['write', 'write', 'bash', 'query'], JSON.stringify(uses));
  for (const u of uses) {
    assert.equal(u.evaluated_permission, 'allow');
    assert.equal(u.evaluation.policy_rule, 'auditors-tools');
  }
  const bash = uses.find((u) => u.name === 'bash');
  const out = text(resultOf(a, bash.id));
  assert.match(out, /Q3 total 16200\.50/, r.workerLog);
  assert.match(out, /Q4 total 15541\.00/);
  const q = resultOf(a, uses.find((u) => u.name === 'query').id);
  assert.notEqual(q.is_error, true, JSON.stringify(q));
  assert.match(text(q), /16200\.5/);
  assert.match(text(q), /15541/);
  // the CSV never left the sandbox except as the model's own write input: the ledger
  // answer came from the database, not from the file
  assert.ok(!text(q).includes('ACME-001'));

  // ian: offered neither bash nor the ledger tool; calling them anyway is refused by rule
  const ianFirst = r.requests.find((q2) => JSON.stringify(q2.body.messages).includes('intern check'));
  const offered = (ianFirst.body.tools ?? []).map((x) => x.name).sort();
  assert.deepEqual(offered, ['glob', 'read']);
  const aliceFirst = r.requests.find((q2) => JSON.stringify(q2.body.messages).includes('quarterly audit'));
  assert.ok((aliceFirst.body.tools ?? []).some((x) => x.name === 'mcp__ledger__query'));
  const i = r.ian.events;
  const denied = byType(i, 'agent.tool_use');
  assert.deepEqual(denied.map((u) => u.name), ['bash', 'mcp__ledger__query']);
  for (const u of denied) {
    assert.equal(u.evaluated_permission, 'deny');
    assert.equal(u.evaluation.policy_rule, 'no-intern-shell-or-ledger');
    assert.match(text(resultOf(i, u.id)), /denied by policy rule no-intern-shell-or-ledger/);
  }
  assert.equal(byType(i, 'user.tool_result').length, 0, 'nothing reached the worker');

  // the gateway let alice's agent through with verified tokens, and refused ian's (the
  // server still tries to list the ledger's tools for his session): never a bad token
  assert.match(r.gatewayLog, /request refused: agent identity.*status=403.*not allowed on this route/);
  assert.doesNotMatch(r.gatewayLog, /status=401/);
  assert.ok(!r.serverLog.includes(CSV.slice(0, 40)), 'the CSV is not in the server log');

  // every step is in the audit log, which `airlock audit verify` accepts
  assert.ok(r.audit, 'the server keeps an audit log');
  assert.match(r.audit.verify, /: ok: \d+ records/);
  const rec = (action, pred = () => true) => r.audit.records.filter((x) => x.action === action && pred(x));
  assert.equal(rec('session.create').length, 2);
  const calls = rec('tool.call', (x) => x.resources.session_id === r.alice.id);
  assert.deepEqual(calls.map((x) => [x.resources.tool, x.decision, x.rule]),
    [['write', 'allow', 'auditors-tools'], ['write', 'allow', 'auditors-tools'], ['bash', 'allow', 'auditors-tools'],
      ['query', 'allow', 'auditors-tools']]);
  for (const x of calls) assert.equal(x.principal.sub, 'alice');
  assert.equal(rec('mcp.call', (x) => x.resources.session_id === r.alice.id && x.outcome === 'ok').length, 1);
  const ianCalls = rec('tool.call', (x) => x.resources.session_id === r.ian.id);
  assert.deepEqual(ianCalls.map((x) => [x.decision, x.rule, x.outcome]),
    [['deny', 'no-intern-shell-or-ledger', 'denied'], ['deny', 'no-intern-shell-or-ledger', 'denied']]);
  assert.ok(rec('tunnel.token.reveal').length >= 1 && rec('policy.reload').length >= 1);
  // tool inputs are hashes only: not the CSV, not the SQL
  assert.ok(!r.audit.text.includes('ACME-001') && !r.audit.text.includes('GROUP BY'));
});
