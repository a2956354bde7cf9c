// `./tools/demo.sh bank`: the flagship governance scenario, narrated (the same run as
// tests/interop/bank.test.mjs; see tests/interop/lib/bank_scenario.mjs for every part).
// The agent is `airlock mock-model`, a SCRIPTED STAND-IN for a model provider: it is not
// a model. Everything else is real: the OpenID provider, PostgreSQL, the MCP server, the
// tunnel and gateway, the worker's sandbox, the policy and the audit log.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const { runBank } = await import(pathToFileURL(path.join(here, '..', 'tests', 'interop', 'lib', 'bank_scenario.mjs')).href);

console.log('bank demo: the model is a SCRIPTED STAND-IN (airlock mock-model), not a model;');
console.log('bank demo: identity, policy, sandbox, tunnel, gateway and audit log are all real.\n');
const r = await runBank({ say: (line) => console.log(`bank demo: ${line}`) });
console.log(`\nbank demo: the gateway's refusals: ${(r.gatewayLog.match(/request refused[^\n]*/g) ?? ['none']).join('\n  ')}`);
if (!r.audit) console.log('bank demo: (this build keeps no audit log yet)');
await r.cleanup();
