// The sessions list: newest first, paged with the API's cursors.
import { api } from './api.js';
import { age, el, statusBadge } from './render.js';
import { isoFromLocal, listAll } from './ui.js';

const STATUSES = ['idle', 'running', 'rescheduling', 'terminated'];

// params: the page's hash query: status, archived ("1"), agent (an id), since and until
// (datetime-local values), page (a cursor).
export async function showSessions(main, params) {
  const status = STATUSES.includes(params.get('status')) ? params.get('status') : '';
  const archived = params.get('archived') === '1';
  const agent = params.get('agent') ?? '';
  const since = params.get('since') ?? '';
  const until = params.get('until') ?? '';
  const q = new URLSearchParams({ limit: '20' });
  if (params.get('page')) q.set('page', params.get('page'));
  if (status) q.set('statuses[]', status);
  if (archived) q.set('include_archived', 'true');
  if (agent) q.set('agent_id', agent);
  if (since) q.set('created_at[gte]', isoFromLocal(since, 'Created from'));
  if (until) q.set('created_at[lte]', isoFromLocal(until, 'Created to'));
  const [res, agents] = await Promise.all([
    api('GET', `/sessions?${q}`),
    // the agent filter's choices; a role that may not list agents just has none
    listAll('/agents?include_archived=true', 200).catch(() => []),
  ]);
  // the filters live in the address, so a page can be bookmarked and Back works
  const go = (next) => {
    const h = new URLSearchParams();
    for (const [k, v] of Object.entries(next)) if (v) h.set(k, v);
    location.hash = `#/sessions${h.size ? `?${h}` : ''}`;
  };
  const filters = { status, archived: archived ? '1' : '', agent, since, until };
  const statusSel = el(
    'select',
    { id: 'filter-status', onchange: (e) => go({ ...filters, status: e.target.value }) },
    el('option', { value: '', text: 'any status' }),
    STATUSES.map((st) => el('option', { value: st, selected: st === status, text: st })),
  );
  const agentSel = el(
    'select',
    { id: 'filter-agent', onchange: (e) => go({ ...filters, agent: e.target.value }) },
    el('option', { value: '', text: 'any agent' }),
    agents.map((a) => el('option', { value: a.id, selected: a.id === agent, text: a.name || a.id })),
    // an agent named in the address but not listed stays chosen
    agent && !agents.some((a) => a.id === agent) ? el('option', { value: agent, selected: true, text: agent }) : null,
  );
  const time = (id, value, key) =>
    el('input', { id, type: 'datetime-local', step: 1, value, onchange: (e) => go({ ...filters, [key]: e.target.value }) });
  const archivedBox = el('input', {
    type: 'checkbox',
    id: 'filter-archived',
    checked: archived,
    onchange: (e) => go({ ...filters, archived: e.target.checked ? '1' : '' }),
  });
  const pageLink = (cursor, text) => {
    const h = new URLSearchParams({ ...Object.fromEntries(Object.entries(filters).filter(([, v]) => v)), page: cursor });
    return el('a', { href: `#/sessions?${h}`, text });
  };
  const rows = res.data.map((s) =>
    el(
      'tr',
      { 'data-session-id': s.id },
      el('td', {}, el('a', { href: `#/sessions/${encodeURIComponent(s.id)}`, text: s.title || s.id })),
      el('td', {}, statusBadge(s.status), s.archived_at ? el('span', { class: 'badge', text: 'archived' }) : null),
      el('td', { text: s.agent?.name ?? s.agent?.id ?? '' }),
      el('td', { class: 'mono', text: s.environment_id ?? '' }),
      el('td', { text: s.metadata?.owner ?? s.owner?.email ?? s.owner?.sub ?? '—' }),
      el('td', { title: s.created_at, text: age(s.created_at) }),
    ),
  );
  const pager = el(
    'nav',
    { class: 'pager', 'aria-label': 'Pages' },
    res.prev_page ? pageLink(res.prev_page, '← Newer') : null,
    res.next_page ? pageLink(res.next_page, 'Older →') : null,
  );
  main.replaceChildren(
    el('h1', { text: 'Sessions' }),
    el(
      'div',
      { class: 'filters' },
      el('label', { for: 'filter-status', text: 'Status ' }),
      statusSel,
      el('label', { for: 'filter-agent', text: 'Agent ' }),
      agentSel,
      el('label', { for: 'filter-since', text: 'Created from ' }),
      time('filter-since', since, 'since'),
      el('label', { for: 'filter-until', text: 'to ' }),
      time('filter-until', until, 'until'),
      el('label', {}, archivedBox, ' Include archived'),
    ),
    rows.length === 0
      ? el('p', { class: 'muted', text: 'No sessions here.' })
      : el(
          'table',
          { class: 'list' },
          el(
            'thead',
            {},
            el('tr', {}, ...['Session', 'Status', 'Agent', 'Environment', 'Owner', 'Age'].map((h) => el('th', { scope: 'col', text: h }))),
          ),
          el('tbody', {}, rows),
        ),
    pager,
  );
}
