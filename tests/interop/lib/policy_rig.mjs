// What the tool-policy tests share (policy.test.mjs, audit.test.mjs): a real OpenID
// provider with one user in each group the policies name, a scripted model, and a server
// that reads its tool policy from a file, with an admin client, an agent offered the
// whole toolset and a self-hosted environment. Each test keeps its own policy and script.
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { startServer } from './server.mjs';
import { startMockModel } from './mockmodel.mjs';
import { startIdp } from './oidc_idp.mjs';

// name: the temporary directory's prefix (airlock-NAME-); policy: the first policy
// file's text; script: the mock model's; env: more server variables (they win over the
// rig's); keepData: the server's data directory lives in the rig's directory, so it
// outlasts srv.stop() until rig.stop() (the audit test reads the last checkpoint).
// Resolves once the server has loaded the provider's keys to
// {idp, mock, srv, dir, policyFile, admin, agent, env, writePolicy, logSays, userClient,
// say, stop}; stop() also runs after a failed start, ending what had started.
export async function startPolicyRig({ name, policy, script, env = {}, keepData = false }) {
  const rig = {};
  // Replaces the policy file the way an editor or a ConfigMap does: a new inode.
  rig.writePolicy = (text) => {
    const tmp = `${rig.policyFile}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, rig.policyFile);
  };
  rig.logSays = async (re) => {
    for (let i = 0; i < 200 && !re.test(rig.srv.log()); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(rig.srv.log(), re);
  };
  rig.userClient = async (user) =>
    new Anthropic({ baseURL: rig.srv.baseURL, apiKey: null, authToken: await rig.idp.token(user), maxRetries: 0 });
  rig.say = (c, sid, text) =>
    c.beta.sessions.events.send(sid, { events: [{ type: 'user.message', content: [{ type: 'text', text }] }] });
  rig.stop = async () => {
    await rig.srv?.stop();
    await rig.mock?.stop();
    await rig.idp?.stop();
    if (rig.dir) rmSync(rig.dir, { recursive: true, force: true });
  };
  try {
    rig.idp = await startIdp({
      users: {
        alice: { groups: ['auditors'] },
        bob: { groups: ['interns'] },
        erin: { groups: ['engineers'] },
        pat: { groups: ['platform-admins'] },
      },
    });
    rig.mock = await startMockModel(script);
    rig.dir = mkdtempSync(path.join(tmpdir(), `airlock-${name}-`));
    rig.policyFile = path.join(rig.dir, 'policy.yaml');
    rig.writePolicy(policy);
    rig.srv = await startServer({
      ...(keepData ? { dataDir: mkdtempSync(path.join(rig.dir, 'data-')) } : {}),
      env: {
        AIRLOCK_OIDC_ISSUER: rig.idp.issuer,
        AIRLOCK_OIDC_AUDIENCE: 'airlock',
        AIRLOCK_POLICY_FILE: rig.policyFile,
        AIRLOCK_MODEL_BASE_URL: rig.mock.url,
        AIRLOCK_MODEL_API_KEY: 'mock-model-key',
        ...env,
      },
    });
    await rig.logSays(/identity provider keys loaded/);
    rig.admin = new Anthropic({ baseURL: rig.srv.baseURL, apiKey: rig.srv.apiKey, maxRetries: 0 });
    rig.agent = await rig.admin.beta.agents.create({
      name: 'auditor', model: 'claude-test',
      tools: [{ type: 'agent_toolset_20260401', default_config: { permission_policy: { type: 'always_allow' } } }],
    });
    rig.env = await rig.admin.beta.environments.create({ name: 'bank', config: { type: 'self_hosted' } });
  } catch (e) {
    await rig.stop();
    throw e;
  }
  return rig;
}
