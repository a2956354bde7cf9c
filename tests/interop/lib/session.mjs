// Helpers for end-to-end session tests: create an agent + self-hosted environment +
// environment key + session, and collect a session's event stream until a condition.
import Anthropic from '@anthropic-ai/sdk';

export async function setupSession(srv, { agent = {}, toolsetPolicy = 'always_allow' } = {}) {
  const client = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
  const env = await client.beta.environments.create({ name: 'e2e', config: { type: 'self_hosted' } });
  const ag = await client.beta.agents.create({
    name: 'e2e',
    model: 'claude-e2e',
    tools: [
      {
        type: 'agent_toolset_20260401',
        default_config: { permission_policy: { type: toolsetPolicy } },
      },
    ],
    ...agent,
  });
  const r = await fetch(`${srv.baseURL}/v1/environments/${env.id}/keys`, {
    method: 'POST',
    headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json' },
    body: '{"name":"e2e"}',
  });
  if (r.status !== 200) throw new Error(`environment key: ${r.status} ${await r.text()}`);
  const envKey = (await r.json()).key;
  const session = await client.beta.sessions.create({ agent: ag.id, environment_id: env.id });
  return { client, env, agent: ag, envKey, session };
}

// Reads the session's SSE stream (opened before this returns) into `events` until
// `until(event, events)` is true or the timeout passes. Returns {events, done}.
export async function collectEvents(client, sessionId, until, { timeoutMs = 60000 } = {}) {
  const stream = await client.beta.sessions.events.stream(sessionId);
  const events = [];
  const done = (async () => {
    const timer = setTimeout(() => stream.controller.abort(), timeoutMs);
    try {
      for await (const ev of stream) {
        events.push(ev);
        if (until(ev, events)) break;
      }
    } catch (e) {
      if (!stream.controller.signal.aborted) throw e;
    } finally {
      clearTimeout(timer);
    }
    return events;
  })();
  return { events, done };
}

export const endTurn = (ev) => ev.type === 'session.status_idle' && ev.stop_reason?.type === 'end_turn';

export function textOf(content) {
  return (content ?? [])
    .filter((b) => b.type === 'text')
    .map((b) => b.text)
    .join('');
}

// A self-hosted environment and a key of it, for tests that poll work themselves.
export async function envWithKey(srv, client, name = 'test-env') {
  const env = await client.beta.environments.create({ name, config: { type: 'self_hosted' } });
  const r = await fetch(`${srv.baseURL}/v1/environments/${env.id}/keys`, {
    method: 'POST', headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json' }, body: '{"name":"k"}',
  });
  if (r.status !== 200) throw new Error(`environment key: ${r.status}`);
  return { env, envKey: (await r.json()).key };
}

// The sessions token of the session's work item, polled as a worker would.
export async function sessionsToken(srv, env, envKey, sessionId, workerId = 'test') {
  for (let i = 0; i < 50; i++) {
    const r = await fetch(`${srv.baseURL}/v1/environments/${env.id}/work/poll?block_ms=999`, {
      headers: { authorization: `Bearer ${envKey}`, 'anthropic-worker-id': workerId },
    });
    const body = await r.json();
    if (body?.id && body.data?.id === sessionId)
      return JSON.parse(Buffer.from(body.secret, 'base64url').toString('utf8')).sessions_token;
  }
  throw new Error('no work item for the session');
}
