// Environments: the list (and a new one), an environment's work queue as the API shows
// it to a server key (depth, waiting to be acknowledged, oldest, workers polling), its
// work items (airlock's work list for server keys and admins, docs/server/work.md), its
// sessions, and environment keys, each shown once when made.
import { api, ApiError } from './api.js';
import { age, el, statusBadge } from './render.js';
import { archivedFilter, errorLine, fillMain, field, listPage, onSubmit, pager, table, twoStep, when } from './ui.js';

const enc = encodeURIComponent;
const STATS_EVERY_MS = 5000;
const WORK_PAGE = 20;
// what a work item's metadata cell shows at most (it is whatever a worker wrote)
const META_KEYS = 12;
const META_CHARS = 200;

export async function showEnvironments(main, params) {
  const { res, archived, query } = await listPage('/environments', params);
  const rows = res.data.map((e) =>
    el(
      'tr',
      { 'data-environment-id': e.id },
      el('td', {}, el('a', { href: `#/environments/${enc(e.id)}`, text: e.name || e.id })),
      el('td', { class: 'mono', text: e.id }),
      el('td', { text: e.config?.type ?? '' }, e.archived_at ? el('span', { class: 'badge', text: 'archived' }) : null),
      el('td', { title: e.created_at, text: age(e.created_at) }),
    ),
  );
  const name = el('input', { id: 'env-name', name: 'name', required: true });
  const description = el('input', { id: 'env-description', name: 'description' });
  const err = errorLine('env-error');
  const form = el(
    'form',
    { id: 'env-form', class: 'card form' },
    el('h2', { text: 'New environment' }),
    field('Name', name),
    field('Description', description),
    el('div', { class: 'row' }, el('button', { type: 'submit', text: 'Create environment' })),
    err,
  );
  onSubmit(form, err, async () => {
    const body = { name: name.value, config: { type: 'self_hosted' } };
    if (description.value) body.description = description.value;
    const e = await api('POST', '/environments', body);
    location.hash = `#/environments/${enc(e.id)}`;
  });
  fillMain(main, 
    el('h1', { text: 'Environments' }),
    archivedFilter('/environments', archived),
    table(['Environment', 'Id', 'Type', 'Created'], rows, 'No environments here.'),
    pager('/environments', query, res),
    form,
  );
}

function statBox(id, label) {
  const dd = el('dd', { id, text: '…' });
  return [el('div', {}, el('dt', { text: label }), dd), dd];
}

// An RFC 3339 time as "3 min ago" with the full time on hover; '—' when absent.
function timeCell(ts, cls) {
  return ts ? el('td', { class: cls, title: ts, text: age(ts) }) : el('td', { class: cls, text: '—' });
}

// A worker's metadata as "key: value" lines, text only, bounded.
function metadataCell(md) {
  const entries = md && typeof md === 'object' ? Object.entries(md) : [];
  if (entries.length === 0) return el('td', { class: 'work-meta muted', text: '—' });
  const cut = (t) => (t.length > META_CHARS ? `${t.slice(0, META_CHARS)}…` : t);
  return el(
    'td',
    { class: 'work-meta' },
    entries.slice(0, META_KEYS).map(([k, v]) =>
      el('div', {}, el('span', { class: 'mono', text: cut(k) }), ': ', cut(typeof v === 'string' ? v : JSON.stringify(v))),
    ),
    entries.length > META_KEYS ? el('div', { class: 'muted', text: `and ${entries.length - META_KEYS} more` }) : null,
  );
}

function workRow(w) {
  const sid = w.data?.id;
  return el(
    'tr',
    { 'data-work-id': w.id, 'data-state': w.state },
    el('td', { class: 'mono', text: w.id }),
    el('td', {}, statusBadge(w.state)),
    el('td', {}, sid ? el('a', { href: `#/sessions/${enc(sid)}`, class: 'mono', text: sid }) : '—'),
    timeCell(w.created_at, 'work-created'),
    timeCell(w.acknowledged_at, 'work-acked'),
    timeCell(w.latest_heartbeat_at, 'work-heartbeat'),
    timeCell(w.stopped_at ?? w.stop_requested_at, 'work-stop'),
    metadataCell(w.metadata),
  );
}

// The environment's work items, newest first, WORK_PAGE at a time through the list's
// cursor. Kept in the page (not the address): the counters' timer reloads the page of
// items being looked at. Returns {node, load}.
function workItems(envId) {
  const trail = []; // the cursors that led to the page shown ('' = the newest)
  let seq = 0;
  let denied = false;
  const body = el('div', { id: 'work-items', 'aria-live': 'polite' });
  const err = errorLine('work-error');
  const newer = el('button', { type: 'button', class: 'secondary', id: 'work-newer', text: '← Newer', hidden: true });
  const older = el('button', { type: 'button', class: 'secondary', id: 'work-older', text: 'Older →', hidden: true });
  let next = null;
  async function load() {
    if (denied) return;
    const mine = ++seq;
    const q = new URLSearchParams({ limit: String(WORK_PAGE) });
    if (trail.length) q.set('page', trail.at(-1));
    try {
      const res = await api('GET', `/environments/${enc(envId)}/work?${q}`);
      if (mine !== seq) return; // a later load (a page turned) answers instead
      next = res.next_page ?? null;
      body.replaceChildren(
        table(['Work item', 'State', 'Session', 'Created', 'Acknowledged', 'Last heartbeat', 'Stop', 'Worker metadata'], res.data.map(workRow), 'No work items in this environment.'),
      );
      newer.hidden = trail.length === 0;
      older.hidden = !next;
      body.dataset.updated = String(Date.now());
      err.textContent = '';
    } catch (e) {
      if (mine !== seq) return;
      if (e instanceof ApiError && e.status === 403) {
        // a developer or user signed in: the list is for server keys and admins
        denied = true;
        body.replaceChildren(el('p', { class: 'muted', id: 'work-denied', text: 'Work items are listed to server API keys and administrators only.' }));
        newer.hidden = older.hidden = true;
        return;
      }
      err.textContent = e.message;
    }
  }
  newer.addEventListener('click', () => {
    trail.pop();
    load();
  });
  older.addEventListener('click', () => {
    if (next) trail.push(next);
    load();
  });
  const node = el('section', { 'aria-labelledby': 'work-title' },
    el('h2', { id: 'work-title', text: 'Work items' }),
    body,
    el('nav', { class: 'pager', 'aria-label': 'Work item pages' }, newer, older),
    err,
  );
  return { node, load };
}

export async function showEnvironment(main, envId) {
  const e = await api('GET', `/environments/${enc(envId)}`);
  const [depthBox, depth] = statBox('stat-depth', 'Waiting in the queue');
  const [pendingBox, pending] = statBox('stat-pending', 'Delivered, not acknowledged');
  const [oldestBox, oldest] = statBox('stat-oldest', 'Oldest waiting since');
  const [workersBox, workers] = statBox('stat-workers', 'Workers polling (30 s)');
  const statsErr = errorLine('stats-error');
  const stats = el('dl', { class: 'stats', id: 'stats', 'aria-live': 'polite' }, depthBox, pendingBox, oldestBox, workersBox);
  async function refresh() {
    try {
      const s = await api('GET', `/environments/${enc(envId)}/work/stats`);
      depth.textContent = String(s.depth);
      pending.textContent = String(s.pending);
      oldest.textContent = s.oldest_queued_at ? age(s.oldest_queued_at) : '—';
      oldest.title = s.oldest_queued_at ?? '';
      workers.textContent = String(s.workers_polling);
      stats.dataset.updated = String(Date.now());
      statsErr.textContent = '';
    } catch (err) {
      statsErr.textContent = err.message;
    }
  }
  const work = workItems(envId);
  await Promise.all([refresh(), work.load()]);
  // the items are read again with the counters, so both tell the same moment
  const timer = setInterval(() => {
    refresh();
    work.load();
  }, STATS_EVERY_MS);

  // sessions here: airlock's environment_id filter on the sessions list
  const sess = await api('GET', `/sessions?limit=50&include_archived=true&environment_id=${enc(envId)}`);
  const sessRows = sess.data.map((s) =>
    el(
      'tr',
      { 'data-session-id': s.id },
      el('td', {}, el('a', { href: `#/sessions/${enc(s.id)}`, text: s.title || s.id })),
      el('td', {}, statusBadge(s.status), s.archived_at ? el('span', { class: 'badge', text: 'archived' }) : null),
      el('td', { text: s.agent?.name ?? s.agent?.id ?? '' }),
      el('td', { title: s.created_at, text: age(s.created_at) }),
    ),
  );

  // an environment key: shown here once, never again (the server keeps its hash)
  const keyName = el('input', { id: 'key-name', name: 'name', placeholder: 'e.g. worker on host-3' });
  const keyErr = errorLine('key-error');
  const keyOut = el('div', { id: 'key-out' });
  const keyForm = el(
    'form',
    { id: 'key-form', class: 'card form' },
    el('h2', { text: 'Environment keys' }),
    el('p', { class: 'muted', text: 'A worker polls this environment with one. The key is shown once, here, when it is made: the server keeps only its hash.' }),
    field('Key name (optional)', keyName),
    el('div', { class: 'row' }, el('button', { type: 'submit', id: 'create-key', text: 'Create an environment key' })),
    keyErr,
    keyOut,
  );
  keyForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    keyErr.textContent = '';
    keyOut.replaceChildren();
    try {
      const k = await api('POST', `/environments/${enc(envId)}/keys`, keyName.value ? { name: keyName.value } : {});
      const shown = el('input', { id: 'new-key', readonly: true, class: 'mono', value: k.key, 'aria-describedby': 'new-key-note', size: 60 });
      keyOut.replaceChildren(
        el(
          'div',
          { class: 'secret', role: 'status' },
          el('label', { for: 'new-key', text: `Key ${k.id}` }),
          ' ',
          shown,
          el('p', { id: 'new-key-note', text: 'Copy it now: it will not be shown again. Leaving this page forgets it.' }),
        ),
      );
      keyName.value = '';
      shown.focus();
      shown.select();
    } catch (err) {
      keyErr.textContent = err.message;
    }
  });

  const archiveErr = errorLine('archive-error');
  const archive = e.archived_at
    ? el('span', { class: 'badge', text: 'archived' })
    : twoStep({ id: 'archive-environment' }, 'Archive…', 'Archive this environment for good', async () => {
        try {
          await api('POST', `/environments/${enc(envId)}/archive`, {});
          // the router shows the page again and ends this one's refresh timer
          window.dispatchEvent(new HashChangeEvent('hashchange'));
        } catch (err) {
          archiveErr.textContent = err.message;
        }
      });
  fillMain(main, 
    el('p', {}, el('a', { href: '#/environments', text: '← Environments' })),
    el('div', { class: 'page-head' }, el('h1', { id: 'environment-title', text: e.name }), archive),
    el(
      'dl',
      { class: 'facts' },
      el('dt', { text: 'Environment' }), el('dd', { class: 'mono', text: e.id }),
      el('dt', { text: 'Description' }), el('dd', { text: e.description ?? '—' }),
      el('dt', { text: 'Created' }), el('dd', { text: when(e.created_at) }),
    ),
    archiveErr,
    el('h2', { text: 'Work queue' }),
    stats,
    statsErr,
    work.node,
    el('h2', { text: 'Sessions in this environment' }),
    table(['Session', 'Status', 'Agent', 'Created'], sessRows, 'No sessions in this environment.'),
    sess.next_page ? el('p', { class: 'muted', text: 'The 50 newest are shown.' }) : null,
    e.archived_at ? null : keyForm,
  );
  return () => clearInterval(timer);
}
