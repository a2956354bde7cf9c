// The audit log (GET /v1/audit_events, administrators only: others get the API's 403):
// filters in the address, paged with the API's cursors, a record opened in full, and
// the filtered records exported as JSON lines, exactly as the server stores them.
import { api } from './api.js';
import { el } from './render.js';
import { errorLine, field, fillMain, href, isoFromLocal, pager, table } from './ui.js';

const FILTERS = ['action', 'principal', 'session_id', 'since', 'until'];
const EXPORT_MAX = 100_000; // records in one export; more: narrow the filter or use the CLI

// The API query for the filters in the hash's params (times from the page's local
// datetime inputs, sent as RFC 3339 UTC).
function apiQuery(params) {
  const q = new URLSearchParams();
  for (const k of ['action', 'principal', 'session_id']) if (params.get(k)) q.set(k, params.get(k));
  const since = isoFromLocal(params.get('since'), 'From');
  const until = isoFromLocal(params.get('until'), 'To');
  if (since) q.set('created_at[gte]', since);
  if (until) q.set('created_at[lte]', until);
  return q;
}

const principalText = (p) => (p ? (p.sub ?? '') + (p.iss ? ` (${p.iss})` : '') : '');
const resourcesText = (r) => Object.entries(r ?? {}).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');

export async function showAudit(main, params) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) ?? '']));
  const q = apiQuery(params);
  q.set('limit', '50');
  if (params.get('page')) q.set('page', params.get('page'));
  const res = await api('GET', `/audit_events?${q}`);

  const inputs = {
    action: el('input', { id: 'audit-action', name: 'action', value: filters.action, placeholder: 'e.g. tunnel.token.rotate', class: 'mono' }),
    principal: el('input', { id: 'audit-principal', name: 'principal', value: filters.principal, placeholder: 'a user\'s sub, or apikey:<key id>', class: 'mono' }),
    session_id: el('input', { id: 'audit-session', name: 'session_id', value: filters.session_id, placeholder: 'sesn_…', class: 'mono' }),
    since: el('input', { id: 'audit-since', name: 'since', type: 'datetime-local', step: 1, value: filters.since }),
    until: el('input', { id: 'audit-until', name: 'until', type: 'datetime-local', step: 1, value: filters.until }),
  };
  const form = el(
    'form',
    { id: 'audit-filters', class: 'card filters-grid', 'aria-label': 'Filter the audit log' },
    field('Action', inputs.action),
    field('Principal', inputs.principal),
    field('Session', inputs.session_id),
    field('From', inputs.since),
    field('To', inputs.until),
    el('div', { class: 'row' }, el('button', { type: 'submit', text: 'Filter' }), el('a', { href: '#/audit', id: 'audit-clear', text: 'Clear' })),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = href('/audit', Object.fromEntries(FILTERS.map((k) => [k, inputs[k].value])));
  });

  const rows = res.data.map((r) =>
    el(
      'tr',
      { 'data-seq': r.seq },
      el('td', { class: 'mono', text: String(r.seq) }),
      el('td', { title: r.time, text: new Date(r.time).toLocaleString() }),
      el('td', { class: 'mono', text: r.action }),
      el('td', { class: 'mono', text: principalText(r.principal) }),
      el('td', { class: 'mono small', text: resourcesText(r.resources) }),
      el('td', { text: [r.decision, r.rule, r.outcome].filter(Boolean).join(' · ') }),
      // the whole record, as stored, on request
      el('td', {}, el('details', {}, el('summary', { text: 'Record' }), el('pre', { class: 'io', text: JSON.stringify(r, null, 2) }))),
    ),
  );

  const exportErr = errorLine('export-error');
  const exportOut = el('span', { id: 'export-out', role: 'status' });
  const exportBtn = el('button', { type: 'button', id: 'export', class: 'secondary', text: 'Export these records (JSON lines)' });
  let url = null;
  exportBtn.addEventListener('click', async () => {
    exportErr.textContent = '';
    exportOut.replaceChildren('Exporting…');
    exportBtn.disabled = true;
    try {
      const eq = apiQuery(params);
      eq.set('limit', '1000');
      eq.set('order', 'asc'); // oldest first, as the log file and `airlock audit export`
      const lines = [];
      let page = '';
      let truncated = false;
      for (;;) {
        if (page) eq.set('page', page);
        const r = await api('GET', `/audit_events?${eq}`);
        for (const rec of r.data) lines.push(JSON.stringify(rec));
        if (!r.next_page) break;
        if (lines.length >= EXPORT_MAX) {
          truncated = true;
          break;
        }
        page = r.next_page;
      }
      if (url) URL.revokeObjectURL(url);
      url = URL.createObjectURL(new Blob(lines.map((l) => `${l}\n`), { type: 'application/x-ndjson' }));
      const name = `airlock-audit-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`;
      const link = el('a', { id: 'export-link', href: url, download: name, 'data-records': lines.length, text: `Download ${name} (${lines.length} records)` });
      exportOut.replaceChildren(link, truncated ? ` — the first ${lines.length} only: narrow the filter, or use airlock audit export on the server` : '');
      link.click();
    } catch (e) {
      exportOut.replaceChildren();
      exportErr.textContent = e.message;
    } finally {
      exportBtn.disabled = false;
    }
  });

  fillMain(
    main,
    el('h1', { text: 'Audit log' }),
    form,
    el('div', { class: 'row' }, exportBtn, exportOut),
    exportErr,
    el('p', { class: 'muted', text: 'Arguments of tool calls are never stored, only their SHA-256. A filtered export is not a whole chain: airlock audit verify checks a complete export (airlock audit export).' }),
    table(['Seq', 'Time', 'Action', 'Principal', 'Resources', 'Decision', ''], rows, 'No records match.'),
    pager('/audit', { ...filters, page: params.get('page') ?? '', trail: params.get('trail') ?? '' }, res),
  );
  return () => {
    if (url) URL.revokeObjectURL(url);
  };
}
