// The console's calls to its server: sign-in, sign-out and /v1 with the session cookie
// (HttpOnly: no script sees it) and the session's CSRF token in x-airlock-console.
// The token lives in this module's memory only, never in localStorage.
const HEADER = 'x-airlock-console';
let csrf = null;

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function parse(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) {
    if (res.status === 401 && csrf !== null) {
      csrf = null;
      window.dispatchEvent(new Event('airlock:signed-out'));
    }
    throw new ApiError(res.status, body);
  }
  return body;
}

const opts = (method, headers, body) => ({
  method,
  headers,
  body: body === undefined ? undefined : JSON.stringify(body),
  credentials: 'same-origin',
  cache: 'no-store',
  redirect: 'error',
});

// The signed-in session ({key_id, csrf_token, expires_at}) or null.
export async function whoami() {
  const res = await fetch('session', opts('GET', { [HEADER]: '1' }));
  if (res.status === 401) return null;
  const s = await parse(res);
  csrf = s.csrf_token;
  return s;
}

export async function signIn(key) {
  const res = await fetch('login', opts('POST', { [HEADER]: '1', 'content-type': 'application/json' }, { key }));
  const s = await parse(res);
  csrf = s.csrf_token;
  return s;
}

export async function signOut() {
  const res = await fetch('logout', opts('POST', { [HEADER]: csrf ?? '' }));
  csrf = null;
  await parse(res);
}

// method, path under /v1 ("/sessions?limit=20"), JSON body or undefined.
export async function api(method, path, body) {
  const headers = { [HEADER]: csrf ?? '' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  return parse(await fetch(`/v1${path}`, opts(method, headers, body)));
}

// Reads a session's SSE stream with fetch (EventSource cannot send our header).
// onOpen() runs once the server answered; onEvent(e) for each event. Resolves when
// the stream ends (server, network or signal), rejects on an HTTP error.
export async function streamEvents(sessionId, { onOpen, onEvent, signal }) {
  const res = await fetch(`/v1/sessions/${encodeURIComponent(sessionId)}/events/stream`, {
    ...opts('GET', { [HEADER]: csrf ?? '', accept: 'text/event-stream' }),
    signal,
  });
  if (!res.ok) await parse(res);
  onOpen?.();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value.replace(/\r\n?/g, '\n');
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let type = 'message';
        const data = [];
        for (const line of frame.split('\n')) {
          if (line.startsWith('event:')) type = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (type === 'ping' || data.length === 0) continue;
        try {
          onEvent(JSON.parse(data.join('\n')));
        } catch (err) {
          console.warn('bad event frame', err);
        }
      }
    }
  } catch (err) {
    if (signal?.aborted) return;
    throw err;
  }
}
