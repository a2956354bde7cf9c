// One session: its events as they happen (history from the events list, then the
// live stream, de-duplicated by id so a reconnect shows nothing twice), the tool calls
// waiting for a person (approve / deny), a message box and interrupt.
import { api, streamEvents } from './api.js';
import { blocksText, el, json, statusBadge } from './render.js';
import { markdown } from './markdown.js';

const TOOL_USES = new Set(['agent.tool_use', 'agent.mcp_tool_use', 'agent.custom_tool_use']);
const RESULTS = new Set(['agent.tool_result', 'agent.mcp_tool_result', 'user.tool_result', 'user.custom_tool_result']);
const QUIET = new Set(['event_start', 'event_delta', 'session.usage']);
// A long session shows its newest WINDOW events of the history; earlier ones come WINDOW
// at a time on request (a 10,000-event page took about 1.4 s to read and lay out in full).
const WINDOW = 300;

export async function showSession(main, id) {
  const sid = encodeURIComponent(id);
  const s = await api('GET', `/sessions/${sid}`);
  const seen = new Set();
  const cards = new Map(); // tool_use_id -> card element
  const spanStarts = new Map(); // span.model_request_start id -> its time (ms)
  const answered = new Set(); // tool_use_ids with a confirmation or a result
  let closed = false;
  let interrupted = false; // a model call failing after an interrupt was cancelled, not broken
  let controller = null;
  let past = []; // the history read at open, in order, shown or not
  let firstShown = 0; // past[firstShown..] are in the page
  let backfill = false; // rendering older events: they do not change the status shown
  let olderLoading = false; // the events before the newest WINDOW are being read

  const status = el('span', { id: 'session-status' }, statusBadge(s.status));
  const usage = el('span', { id: 'session-usage' });
  // the session's token counts, as the API sums them (session.usage carries the total)
  const setUsage = (u) => {
    const n = (v) => (Number.isFinite(v) ? v.toLocaleString('en-US') : '0');
    const cache = u?.cache_read_input_tokens ? ` · ${n(u.cache_read_input_tokens)} read from cache` : '';
    usage.textContent = `${n(u?.input_tokens)} in · ${n(u?.output_tokens)} out${cache}`;
  };
  setUsage(s.usage);
  const conn = el('span', { id: 'stream-state', class: 'muted', 'aria-live': 'polite', text: 'connecting…' });
  const list = el('ol', { id: 'events', class: 'events', 'aria-live': 'polite', 'aria-label': 'Events', tabindex: -1 });
  const earlier = el('button', { type: 'button', id: 'earlier', class: 'secondary', hidden: true, onclick: () => showEarlier() });
  const follow = el('input', { type: 'checkbox', id: 'follow', checked: true });
  const text = el('textarea', { id: 'message', rows: 2, placeholder: 'Message the agent' });
  const sendErr = el('p', { class: 'error', role: 'alert' });

  const send = async (events) => {
    sendErr.textContent = '';
    try {
      await api('POST', `/sessions/${sid}/events`, { events });
    } catch (e) {
      sendErr.textContent = e.message;
      throw e;
    }
  };

  // two steps, no window.confirm: archiving cannot be undone
  const archiveBtn = el('button', { type: 'button', id: 'archive', class: 'secondary', text: 'Archive…', hidden: Boolean(s.archived_at) });
  const archived = el('span', { id: 'archived', class: 'badge', text: 'archived', hidden: !s.archived_at });
  archiveBtn.addEventListener('click', async () => {
    if (archiveBtn.dataset.armed !== '1') {
      archiveBtn.dataset.armed = '1';
      archiveBtn.textContent = 'Archive this session for good';
      archiveBtn.className = 'danger';
      return;
    }
    sendErr.textContent = '';
    try {
      await api('POST', `/sessions/${sid}/archive`, {});
      archiveBtn.hidden = true;
      archived.hidden = false;
    } catch (e) {
      sendErr.textContent = e.message;
    }
  });

  const composer = el(
    'form',
    { id: 'composer', class: 'composer' },
    el('label', { for: 'message', class: 'sr-only', text: 'Message' }),
    text,
    el('button', { type: 'submit', text: 'Send' }),
    el('button', {
      type: 'button',
      id: 'interrupt',
      class: 'secondary',
      text: 'Interrupt',
      onclick: () => send([{ type: 'user.interrupt' }]).catch(() => {}),
    }),
  );
  composer.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!text.value.trim()) return;
    try {
      await send([{ type: 'user.message', content: [{ type: 'text', text: text.value }] }]);
      text.value = '';
    } catch {
      /* shown in sendErr */
    }
  });

  main.replaceChildren(
    el(
      'section',
      { class: 'session-head' },
      el('h1', {}, s.title || s.id),
      el(
        'dl',
        { class: 'facts' },
        el('dt', { text: 'Status' }), el('dd', {}, status, ' ', archived),
        el('dt', { text: 'Agent' }), el('dd', { text: s.agent?.name ?? s.agent?.id ?? '' }),
        el('dt', { text: 'Environment' }), el('dd', { class: 'mono', text: s.environment_id ?? '' }),
        el('dt', { text: 'Session' }), el('dd', { class: 'mono', text: s.id }),
        el('dt', { text: 'Tokens' }), el('dd', {}, usage),
        el('dt', { text: 'Stream' }), el('dd', {}, conn),
      ),
      el('div', { class: 'actions' }, archiveBtn, el('label', { class: 'follow' }, follow, ' Follow new events')),
    ),
    earlier,
    list,
    composer,
    sendErr,
  );

  const setStatus = (st) => status.replaceChildren(statusBadge(st));

  function decide(use, card) {
    const reason = el('input', { type: 'text', class: 'deny-reason', placeholder: 'Reason (optional)', 'aria-label': 'Reason for denying' });
    const box = el(
      'div',
      { class: 'decide', role: 'group', 'aria-label': 'Approve or deny this tool call' },
      el('strong', { text: 'Waiting for your approval' }),
      el('button', {
        type: 'button',
        'data-action': 'approve',
        'data-tool-use-id': use.id,
        text: 'Approve',
        onclick: () => send([{ type: 'user.tool_confirmation', tool_use_id: use.id, result: 'allow' }]).catch(() => {}),
      }),
      reason,
      el('button', {
        type: 'button',
        class: 'danger',
        'data-action': 'deny',
        'data-tool-use-id': use.id,
        text: 'Deny',
        onclick: () => {
          const ev = { type: 'user.tool_confirmation', tool_use_id: use.id, result: 'deny' };
          if (reason.value.trim()) ev.deny_message = reason.value.trim();
          send([ev]).catch(() => {});
        },
      }),
    );
    card.append(box);
    card.classList.add('waiting');
  }

  function settle(toolUseId, line) {
    answered.add(toolUseId);
    const card = cards.get(toolUseId);
    if (!card) return false;
    card.querySelector('.decide')?.remove();
    card.classList.remove('waiting');
    if (line) card.append(line);
    return true;
  }

  function item(e, cls, ...children) {
    return el('li', { class: `ev ${cls}`, 'data-event-type': e.type, 'data-event-id': e.id, title: e.processed_at ?? '' }, ...children);
  }

  function renderOne(e) {
    const t = e.type;
    if (t === 'user.message') return item(e, 'user', el('div', { class: 'who', text: 'User' }), el('div', { class: 'text', text: blocksText(e.content) }));
    if (t === 'agent.message') return item(e, 'agent', el('div', { class: 'who', text: 'Agent' }), el('div', { class: 'text md' }, markdown(blocksText(e.content))));
    if (t === 'agent.thinking') {
      // the API's event says that the model thought, and carries its text only when given
      const thought = e.thinking ?? blocksText(e.content);
      if (!thought) return item(e, 'thinking', 'Agent thinking');
      return item(e, 'thinking', el('details', {}, el('summary', { text: 'Thinking' }), el('div', { class: 'text md' }, markdown(thought))));
    }
    if (TOOL_USES.has(t)) {
      const name = t === 'agent.mcp_tool_use' ? `${e.mcp_server_name ?? e.server_name ?? 'mcp'} · ${e.name}` : e.name;
      const ev = e.evaluation ?? {};
      const perm = e.evaluated_permission ?? ev.evaluated_permission;
      const card = item(
        e,
        'tool',
        el(
          'div',
          { class: 'who' },
          t === 'agent.mcp_tool_use' ? 'MCP call ' : t === 'agent.custom_tool_use' ? 'Custom tool ' : 'Tool call ',
          el('code', { text: name }),
          perm ? el('span', { class: `badge perm-${String(perm).replace(/[^a-z]/g, '')}`, text: perm }) : null,
          ev.policy_rule ? el('span', { class: 'policy', text: `policy rule ${ev.policy_rule}${ev.policy_effect ? ` (${ev.policy_effect})` : ''}` }) : null,
        ),
        el('details', { open: true }, el('summary', { text: 'Input' }), el('pre', { class: 'io', text: json(e.input ?? {}) })),
      );
      cards.set(e.id, card);
      if (perm === 'ask' && !answered.has(e.id)) decide(e, card);
      return card;
    }
    if (t === 'user.tool_confirmation') {
      const line = el('div', {
        class: `confirm ${e.result === 'allow' ? 'ok' : 'bad'}`,
        'data-confirmation': e.result,
        text: e.result === 'allow' ? 'Approved' : `Denied${e.deny_message ? `: ${e.deny_message}` : ''}`,
      });
      if (settle(e.tool_use_id, line)) return null;
      return item(e, 'meta', line);
    }
    if (RESULTS.has(t)) {
      const out = el('details', { open: true, class: e.is_error ? 'result error' : 'result' }, el('summary', { text: e.is_error ? 'Error result' : 'Result' }), el('pre', { class: 'io', text: blocksText(e.content) }));
      const id = e.tool_use_id ?? e.mcp_tool_use_id ?? e.custom_tool_use_id;
      if (settle(id, out)) return null;
      return item(e, 'tool', el('div', { class: 'who', text: 'Tool result' }), out);
    }
    if (t.startsWith('session.status_')) {
      const st = t.slice('session.status_'.length);
      if (!backfill) {
        if (st !== 'running') interrupted = false;
        setStatus(st);
      }
      const why = e.stop_reason?.type ? ` (${e.stop_reason.type})` : '';
      return item(e, 'status', `Session ${st}${why}`);
    }
    if (t === 'session.error' || t.endsWith('.error'))
      return item(e, 'err', el('div', { class: 'who', text: 'Error' }), el('div', { class: 'text', text: e.error?.message ?? e.message ?? json(e.error ?? e) }));
    if (t === 'user.interrupt') {
      if (!backfill) interrupted = true;
      return item(e, 'meta', 'Interrupted by user');
    }
    if (t === 'span.model_request_start') {
      spanStarts.set(e.id, Date.parse(e.processed_at));
      return null;
    }
    if (t === 'span.model_request_end') {
      if (e.is_error) return interrupted ? item(e, 'meta', 'Model request cancelled') : item(e, 'err', 'Model request failed');
      // one quiet line a model call: how long it took (when its start is shown) and its tokens
      const ms = Date.parse(e.processed_at) - spanStarts.get(e.model_request_start_id);
      const u = e.model_usage ?? {};
      const n = (v) => (Number.isFinite(v) ? v.toLocaleString('en-US') : '0');
      return item(e, 'meta span', `Model call${Number.isFinite(ms) && ms >= 0 ? ` · ${(ms / 1000).toFixed(1)} s` : ''} · ${n(u.input_tokens)} in · ${n(u.output_tokens)} out`);
    }
    if (t === 'session.usage') {
      if (!backfill) setUsage(e.usage);
      return null;
    }
    if (QUIET.has(t)) return null;
    return item(e, 'meta', el('details', {}, el('summary', { text: t }), el('pre', { class: 'io', text: json(e) })));
  }

  // into: the list for a live event, a fragment while history loads (one layout for a
  // page of events, not one per event: 2,000 events took 3 s that way)
  function add(e, into = list) {
    if (!e?.id || seen.has(e.id)) return;
    seen.add(e.id);
    const n = renderOne(e);
    if (!n) return;
    into.append(n);
    if (into === list && follow.checked) n.scrollIntoView({ block: 'end' });
  }

  // Reads the newest WINDOW events (newest first, one request) and lays them out, so the
  // page goes live quickly whatever the session's length; the older ones are read after
  // that (olderHistory), for "Show earlier" and for any older call still waiting for a
  // person.
  async function history() {
    const q = new URLSearchParams({ limit: String(WINDOW), order: 'desc' });
    const res = await api('GET', `/sessions/${sid}/events?${q}`);
    const newest = res.data.filter((e) => e?.id && !seen.has(e.id)).reverse();
    noteAnswers(newest);
    for (const e of newest) seen.add(e.id);
    past.push(...newest);
    const frag = document.createDocumentFragment();
    for (const e of newest) {
      const n = renderOne(e);
      if (n) frag.append(n);
    }
    list.append(frag);
    firstShown = 0;
    if (follow.checked) list.lastElementChild?.scrollIntoView({ block: 'end' });
    if (res.next_page) {
      olderLoading = true;
      labelEarlier();
      olderHistory(res.next_page).catch((err) => {
        earlier.textContent = `Earlier events could not be read: ${err.message}`;
      });
    }
  }

  function noteAnswers(events) {
    for (const e of events) {
      if (e.type === 'user.tool_confirmation') answered.add(e.tool_use_id);
      else if (RESULTS.has(e.type)) answered.add(e.tool_use_id ?? e.mcp_tool_use_id ?? e.custom_tool_use_id);
    }
  }

  // The rest of the history, newest page first, 1,000 a request, kept (not laid out) in
  // front of what is shown. Then a call older than the window that still waits for a
  // person is brought into view, with everything after it.
  async function olderHistory(cursor) {
    const older = [];
    for (let page = cursor; page && !closed; ) {
      const q = new URLSearchParams({ limit: '1000', order: 'desc', page });
      const res = await api('GET', `/sessions/${sid}/events?${q}`);
      for (const e of res.data) if (e?.id && !seen.has(e.id)) older.push(e);
      page = res.next_page;
    }
    if (closed) return;
    older.reverse();
    noteAnswers(older);
    for (const e of older) seen.add(e.id);
    past = older.concat(past);
    firstShown += older.length;
    olderLoading = false;
    labelEarlier();
    const waiting = older.findIndex((e) => TOOL_USES.has(e.type) && (e.evaluated_permission ?? e.evaluation?.evaluated_permission) === 'ask' && !answered.has(e.id));
    while (waiting >= 0 && firstShown > waiting) showEarlier();
  }

  function labelEarlier() {
    earlier.hidden = firstShown === 0 && !olderLoading;
    earlier.disabled = olderLoading;
    earlier.textContent = olderLoading ? 'Reading earlier events…' : `Show ${Math.min(WINDOW, firstShown)} earlier events (${firstShown} not shown)`;
  }

  // The WINDOW events before the first shown, put above it; what was on screen stays
  // where it was.
  function showEarlier() {
    if (firstShown === 0) return;
    const from = Math.max(0, firstShown - WINDOW);
    const frag = document.createDocumentFragment();
    backfill = true;
    try {
      for (const e of past.slice(from, firstShown)) {
        const n = renderOne(e);
        if (n) frag.append(n);
      }
    } finally {
      backfill = false;
    }
    const doc = document.scrollingElement;
    const before = doc.scrollHeight;
    list.prepend(frag);
    doc.scrollTop += doc.scrollHeight - before;
    firstShown = from;
    labelEarlier();
    // the button goes with the last of them: keyboard focus moves to the events
    if (firstShown === 0) list.focus();
  }

  // After a reconnect: only what is newer than the newest event shown, read newest first
  // until one we have (the log is in one order, so all older ones are shown already).
  async function catchUp() {
    const fresh = [];
    let page = null;
    reading: do {
      const q = new URLSearchParams({ limit: '200', order: 'desc' });
      if (page) q.set('page', page);
      const res = await api('GET', `/sessions/${sid}/events?${q}`);
      for (const e of res.data) {
        if (seen.has(e.id)) break reading;
        fresh.push(e);
      }
      page = res.next_page;
    } while (page);
    const frag = document.createDocumentFragment();
    for (const e of fresh.reverse()) add(e, frag);
    list.append(frag);
    if (fresh.length && follow.checked) list.lastElementChild?.scrollIntoView({ block: 'end' });
  }

  // Stream first, then the history (all of it, or after a reconnect what is new), then
  // what the stream delivered meanwhile: nothing is missed between the two, and ids drop
  // what both had.
  async function connect() {
    let delay = 500;
    while (!closed) {
      controller = new AbortController();
      const buffered = [];
      let live = false;
      let opened;
      const open = new Promise((r) => (opened = r));
      const done = streamEvents(id, {
        signal: controller.signal,
        onOpen: () => opened(),
        onEvent: (e) => (live ? add(e) : buffered.push(e)),
      }).catch((err) => {
        opened();
        return err;
      });
      try {
        await open;
        await (seen.size === 0 ? history() : catchUp());
        for (const e of buffered) add(e);
        live = true;
        conn.textContent = 'live';
        conn.dataset.state = 'live';
        delay = 500;
      } catch (err) {
        conn.textContent = `error: ${err.message}`;
        controller.abort(); // the history failed: start over
      }
      const err = await done;
      if (closed) return;
      conn.textContent = err ? `reconnecting (${err.message ?? err})…` : 'reconnecting…';
      conn.dataset.state = 'reconnecting';
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }
  connect();
  return () => {
    closed = true;
    controller?.abort();
  };
}
