// The sessions list: newest first, paged with the API's cursors.
import { api } from './api.js';
import { age, el, statusBadge } from './render.js';

export async function showSessions(main, page) {
  const q = new URLSearchParams({ limit: '20' });
  if (page) q.set('page', page);
  const res = await api('GET', `/sessions?${q}`);
  const rows = res.data.map((s) =>
    el(
      'tr',
      { 'data-session-id': s.id },
      el('td', {}, el('a', { href: `#/sessions/${encodeURIComponent(s.id)}`, text: s.title || s.id })),
      el('td', {}, statusBadge(s.status)),
      el('td', { text: s.agent?.name ?? s.agent?.id ?? '' }),
      el('td', { class: 'mono', text: s.environment_id ?? '' }),
      el('td', { text: s.metadata?.owner ?? s.owner?.email ?? s.owner?.sub ?? '—' }),
      el('td', { title: s.created_at, text: age(s.created_at) }),
    ),
  );
  const pager = el(
    'nav',
    { class: 'pager', 'aria-label': 'Pages' },
    res.prev_page ? el('a', { href: `#/sessions?page=${encodeURIComponent(res.prev_page)}`, text: '← Newer' }) : null,
    res.next_page ? el('a', { href: `#/sessions?page=${encodeURIComponent(res.next_page)}`, text: 'Older →' }) : null,
  );
  main.replaceChildren(
    el('h1', { text: 'Sessions' }),
    rows.length === 0
      ? el('p', { class: 'muted', text: 'No sessions yet.' })
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
