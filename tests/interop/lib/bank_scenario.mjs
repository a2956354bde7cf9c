// The flagship governance scenario (issue 12), used by tests/interop/bank.test.mjs and by
// `./tools/demo.sh bank`. Everything is real and local:
//   - an OpenID provider (npm oidc-provider) with alice (group auditors) and ian (interns);
//   - airlock server: OIDC users, a default-deny tool policy, agent identity on MCP calls,
//     the tunnel edge, the audit log; `airlock mock-model`, a SCRIPTED STAND-IN for a model
//     provider (it is not a model), plays the agent;
//   - airlock worker: every built-in tool runs in its per-session sandbox;
//   - PostgreSQL 15 (Debian) with a ledger, behind the npm MCP server
//     @modelcontextprotocol/server-postgres (stdio, bridged to Streamable HTTP by npm
//     supergateway), reachable only through an airlock tunnel: `airlock gateway` serves
//     the route `ledger` and requires the agent identity token of a user in auditors.
// alice's session writes confidential CSV files into its sandbox, runs a Python script
// over them, queries the ledger through the tunnel and reports; ian's session of the same
// agent is never offered bash or the database tool, and is refused both when the model
// calls them anyway. The audit log of it all must pass `airlock audit verify`.
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, realpathSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Anthropic from '@anthropic-ai/sdk';
import { startServer } from './server.mjs';
import { startMockModel } from './mockmodel.mjs';
import { startIdp } from './oidc_idp.mjs';
import { startPostgres } from './postgres.mjs';
import { makeEdgeCert } from './edge_cert.mjs';
import { collect, freePort } from './events.mjs';
import { startPollWorker } from './worker.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const INTEROP = path.join(HERE, '..');

export const CSV = 'account,quarter,amount\nACME-001,Q3,1200.50\nACME-001,Q4,980.00\n' +
  'GLOBEX-7,Q3,15000.00\nGLOBEX-7,Q4,14250.25\nINITECH-3,Q4,310.75\n';
const PY = 'import csv\nfrom collections import defaultdict\n' +
  'tot = defaultdict(float)\n' +
  'for r in csv.DictReader(open("ledger.csv")):\n' +
  '    tot[r["quarter"]] += float(r["amount"])\n' +
  'for q in sorted(tot):\n    print(f"{q} total {tot[q]:.2f}")\n';

export const POLICY = `# Who may use which tool (docs/server/policy.md)
default: deny
roles:
  developer: [platform]
rules:
  - id: auditors-tools
    description: auditors analyse ledgers in the sandbox and query the ledger database
    effect: allow
    groups: [auditors]
    tools: [bash, read, write, glob, grep, "mcp__ledger__*"]
  - id: interns-read-only
    effect: allow
    groups: [interns]
    tools: [read, glob]
  - id: no-intern-shell-or-ledger
    effect: deny
    groups: [interns]
    tools: [bash, "mcp__ledger__*"]
`;

// The scripted stand-in's turns: alice's session first (matched by its opening message,
// then in order), then ian's.
export const SCRIPT = [
  { match: 'quarterly audit', content: [{ type: 'text', text: 'I will load the ledger extract into the sandbox first.' },
    { type: 'tool_use', name: 'write', input: { file_path: 'ledger.csv', content: CSV } }] },
  { content: [{ type: 'tool_use', name: 'write', input: { file_path: 'audit.py', content: PY } }] },
  { content: [{ type: 'tool_use', name: 'bash', input: { command: 'python3 audit.py' } }] },
  { content: [{ type: 'tool_use', name: 'mcp__ledger__query',
    input: { sql: "SELECT quarter, sum(amount) AS total FROM transactions GROUP BY quarter ORDER BY quarter" } }] },
  { content: [{ type: 'text', text: 'Audit complete: the CSV extract and the ledger database agree for Q3 and Q4.' }] },
  { match: 'intern check', content: [{ type: 'tool_use', name: 'bash', input: { command: 'cat /etc/passwd' } }] },
  { content: [{ type: 'tool_use', name: 'mcp__ledger__query', input: { sql: 'SELECT * FROM transactions' } }] },
  { content: [{ type: 'text', text: 'I am not allowed to use those tools.' }] },
];

function spawnReady(cmd, args, opts, re, what) {
  const proc = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.log = () => log;
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} not ready: ${log}`)), 60000);
    const on = (d) => {
      log += d;
      if (re.test(log)) { clearTimeout(timer); resolve(proc); }
    };
    proc.stdout.on('data', on);
    proc.stderr.on('data', on);
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${what} exited ${code}: ${log}`)); });
  });
}

async function stopProc(p, sig = 'SIGTERM') {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const done = new Promise((r) => p.once('exit', r));
  p.kill(sig);
  await done;
}

// Runs the whole scenario. say(line) narrates (the demo prints it). Returns what a test
// checks; cleanup() stops everything.
export async function runBank({ say = () => {} } = {}) {
  const BIN = process.env.AIRLOCK_BIN;
  const st = { cleanups: [] };
  const cleanup = async () => {
    for (const c of st.cleanups.reverse()) await c().catch(() => {});
  };
  try {
    const tmp = mkdtempSync(path.join(tmpdir(), 'airlock-bank-'));
    st.cleanups.push(async () => rmSync(tmp, { recursive: true, force: true }));
    makeEdgeCert(tmp, 'bank CA');

    say('PostgreSQL 15: a ledger database with the quarter\'s transactions');
    const pg = await startPostgres({ database: 'ledger' });
    st.cleanups.push(() => pg.stop());
    pg.psql("CREATE TABLE transactions (id serial PRIMARY KEY, account text, quarter text, amount numeric(12,2));" +
      "INSERT INTO transactions (account, quarter, amount) VALUES ('ACME-001','Q3',1200.50),('ACME-001','Q4',980.00)," +
      "('GLOBEX-7','Q3',15000.00),('GLOBEX-7','Q4',14250.25),('INITECH-3','Q4',310.75)");

    say('MCP server @modelcontextprotocol/server-postgres (stdio) behind supergateway (Streamable HTTP), loopback only');
    const mcpPort = await freePort();
    const mcp = await spawnReady(process.execPath, [
      '--import', path.join(HERE, 'mcp_loopback.mjs'),
      path.join(INTEROP, 'node_modules/supergateway/dist/index.js'),
      '--stdio', `${process.execPath} ${path.join(INTEROP, 'node_modules/@modelcontextprotocol/server-postgres/dist/index.js')} ${pg.url}`,
      '--outputTransport', 'streamableHttp', '--stateful', '--port', String(mcpPort),
    ], {}, /[Ll]istening on port/, 'supergateway');
    st.cleanups.push(() => stopProc(mcp, 'SIGKILL'));

    say('OpenID provider: alice is in auditors, ian is in interns');
    const idp = await startIdp({ users: { alice: { groups: ['auditors'], email: 'alice@bank.test' },
      ian: { groups: ['interns'], email: 'ian@bank.test' } } });
    st.cleanups.push(() => idp.stop());

    const mock = await startMockModel(SCRIPT);
    st.cleanups.push(() => mock.stop());
    const policyFile = path.join(tmp, 'policy.yaml');
    writeFileSync(policyFile, POLICY);
    const [apiPort, edgePort] = [await freePort(), await freePort()];
    const issuer = `http://127.0.0.1:${apiPort}`;
    say(`airlock server on ${issuer}: OIDC users, tool policy, agent identity, tunnel edge, audit log`);
    const srv = await startServer({
      args: ['--listen', `127.0.0.1:${apiPort}`],
      env: {
        AIRLOCK_OIDC_ISSUER: idp.issuer, AIRLOCK_OIDC_AUDIENCE: 'airlock',
        AIRLOCK_POLICY_FILE: policyFile,
        AIRLOCK_AGENT_IDENTITY_ISSUER: issuer,
        AIRLOCK_MODEL_BASE_URL: mock.url, AIRLOCK_MODEL_API_KEY: 'mock-model-key',
        AIRLOCK_TUNNEL_LISTEN: `127.0.0.1:${edgePort}`,
        AIRLOCK_TUNNEL_TLS_CERT: path.join(tmp, 'edge.pem'), AIRLOCK_TUNNEL_TLS_KEY: path.join(tmp, 'edge.key'),
        AIRLOCK_TUNNEL_DOMAIN: 'tunnel.bank.test',
      },
    });
    st.cleanups.push(() => srv.stop());
    for (let i = 0; i < 200 && !/identity provider keys loaded/.test(srv.log()); i++)
      await new Promise((r) => setTimeout(r, 50));

    const admin = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
    const H = { 'x-api-key': srv.apiKey, 'content-type': 'application/json' };
    const tunnel = await (await fetch(`${srv.baseURL}/v1/tunnels`, { method: 'POST', headers: H, body: '{"display_name":"ledger"}' })).json();
    const tok = await (await fetch(`${srv.baseURL}/v1/tunnels/${tunnel.id}/reveal_token`, { method: 'POST', headers: H })).json();
    writeFileSync(path.join(tmp, 'tunnel.token'), tok.tunnel_token, { mode: 0o600 });
    const issuerDir = path.join(tmp, 'issuer');
    execFileSync(BIN, ['agent-identity', 'export-issuer', '--out', issuerDir],
      { env: { ...process.env, AIRLOCK_DATA_DIR: srv.dataDir, AIRLOCK_AGENT_IDENTITY_ISSUER: issuer } });
    const gwConfig = path.join(tmp, 'gateway.yaml');
    writeFileSync(gwConfig, [
      `server: 127.0.0.1:${edgePort}`, 'server_name: localhost', `server_ca_file: ${path.join(tmp, 'ca.pem')}`,
      `token_file: ${path.join(tmp, 'tunnel.token')}`, `tunnel_domain: ${tunnel.domain}`, 'connections: 2',
      'routes:', `  ledger: http://127.0.0.1:${mcpPort}`,
      'upstream:', '  allowed_ips: [127.0.0.0/8]',
      'agent_identity:', `  issuer: ${issuer}`, `  jwks_file: ${path.join(issuerDir, '.well-known/jwks.json')}`,
      '  routes:', '    ledger:', '      allowed_groups: [auditors]', '',
    ].join('\n'));
    say(`airlock gateway (inside the "private network"): route ledger requires an auditor's agent identity`);
    const gateway = await spawnReady(BIN, ['gateway', '--config', gwConfig], {}, /Registered tunnel connection/, 'gateway');
    st.cleanups.push(() => stopProc(gateway, 'SIGKILL'));

    const ledgerUrl = `https://ledger.${tunnel.domain}/mcp`;
    const agent = await admin.beta.agents.create({
      name: 'financial-auditor', model: 'claude-scripted', system: 'You audit ledgers. Paths are relative to your working directory.',
      mcp_servers: [{ type: 'url', name: 'ledger', url: ledgerUrl }],
      tools: [
        { type: 'agent_toolset_20260401', default_config: { permission_policy: { type: 'always_allow' } } },
        { type: 'mcp_toolset', mcp_server_name: 'ledger', default_config: { permission_policy: { type: 'always_allow' } } },
      ],
    });
    const env = await admin.beta.environments.create({ name: 'bank', config: { type: 'self_hosted' } });
    const envKey = (await (await fetch(`${srv.baseURL}/v1/environments/${env.id}/keys`, { method: 'POST', headers: H, body: '{"name":"bank-worker"}' })).json()).key;
    const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-bank-wk-')));
    chmodSync(workdir, 0o711);
    st.cleanups.push(async () => rmSync(workdir, { recursive: true, force: true }));
    say('airlock worker: polls the environment, runs every tool call in a per-session sandbox');
    const worker = startPollWorker({ baseURL: srv.baseURL, environmentId: env.id, envKey, workdir, args: ['--max-idle', '3s'] });
    st.cleanups.push(async () => { worker.proc.kill('SIGTERM'); await worker.exited; });

    async function session(user, text, done) {
      const c = new Anthropic({ baseURL: srv.baseURL, apiKey: null, authToken: await idp.token(user), maxRetries: 0 });
      const s = await c.beta.sessions.create({ agent: agent.id, environment_id: env.id, title: `${user}: ${text}` });
      const ev = collect(await c.beta.sessions.events.stream(s.id));
      say(`${user} (${user === 'alice' ? 'auditors' : 'interns'}) starts session ${s.id}: "${text}"`);
      await c.beta.sessions.events.send(s.id, { events: [{ type: 'user.message', content: [{ type: 'text', text }] }] });
      await ev.waitFor(done, 0, `${user}'s session to finish`, 120000);
      ev.close();
      for (const e of ev.events) {
        if (e.type === 'agent.tool_use' || e.type === 'agent.mcp_tool_use')
          say(`  ${e.type} ${e.name} -> ${e.evaluated_permission}${e.evaluation?.policy_rule ? ` (rule ${e.evaluation.policy_rule})` : ''}`);
        if (e.type === 'user.tool_result' || e.type === 'agent.tool_result' || e.type === 'agent.mcp_tool_result')
          say(`  ${e.type}${e.is_error ? ' (error)' : ''}: ${JSON.stringify(e.content?.[0]?.text ?? '').slice(0, 110)}`);
        if (e.type === 'agent.message') say(`  agent: ${e.content?.[0]?.text}`);
      }
      return { id: s.id, events: ev.events };
    }
    const isFinal = (text) => (e) => e.type === 'agent.message' && e.content?.[0]?.text?.includes(text);
    const alice = await session('alice', 'Run the quarterly audit of the ledger.', isFinal('Audit complete'));
    const ian = await session('ian', 'intern check: look at the ledger', isFinal('not allowed'));
    const requests = await mock.requests();
    // ian's refusal at the gateway reaches us through its stderr pipe, maybe a moment later
    for (let i = 0; i < 100 && !/request refused/.test(gateway.log()); i++)
      await new Promise((r) => setTimeout(r, 50));

    let audit = null;
    const auditFile = path.join(srv.dataDir, 'audit.jsonl');
    if (existsSync(auditFile)) {
      const out = execFileSync(BIN, ['audit', 'verify', auditFile], { encoding: 'utf8' });
      const records = readFileSync(auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
      audit = { file: auditFile, verify: out.trim(), records, text: readFileSync(auditFile, 'utf8') };
      say(`audit log: ${audit.verify}`);
    }
    return { alice, ian, requests, gatewayLog: gateway.log(), serverLog: srv.log(), audit, workerLog: worker.log(), cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
