// Pieces the resource pages share: a paged list with the API's cursors, a two-step
// button for what cannot be undone, a form's error line, JSON fields a person edits.
import { api } from './api.js';
import { el } from './render.js';

// A hash address from a path and query object, empty values left out.
export function href(path, query = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  return `#${path}${q.size ? `?${q}` : ''}`;
}

// "Older →" / "← Newer" links for a PageCursor list (next_page; the list remembers
// the cursors it came through so Back and "Newer" work without a prev_page).
export function pager(path, query, res) {
  const trail = (query.trail ?? '').split(' ').filter(Boolean);
  const links = [];
  if (trail.length > 0) {
    const back = trail.slice(0, -1);
    links.push(el('a', { href: href(path, { ...query, page: back.at(-1) ?? '', trail: back.join(' ') }), text: '← Newer' }));
  }
  if (res.next_page) {
    const fwd = [...trail, res.next_page];
    links.push(el('a', { href: href(path, { ...query, page: res.next_page, trail: fwd.join(' ') }), text: 'Older →' }));
  }
  return el('nav', { class: 'pager', 'aria-label': 'Pages' }, links);
}

// A table with a header row; rows are <tr> elements.
export function table(heads, rows, empty = 'Nothing here yet.') {
  if (rows.length === 0) return el('p', { class: 'muted', text: empty });
  return el(
    'table',
    { class: 'list' },
    el('thead', {}, el('tr', {}, heads.map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, rows),
  );
}

// A button that acts on the second click only (no window.confirm, which a keyboard
// user and a test both handle badly); the first click says what the second will do.
export function twoStep(attrs, label, armedLabel, action) {
  const b = el('button', { type: 'button', class: 'secondary', ...attrs, text: label });
  b.addEventListener('click', async () => {
    if (b.dataset.armed !== '1') {
      b.dataset.armed = '1';
      b.textContent = armedLabel;
      b.className = 'danger';
      return;
    }
    b.dataset.armed = '';
    b.textContent = label;
    b.className = 'secondary';
    b.disabled = true;
    try {
      await action();
    } finally {
      b.disabled = false;
    }
  });
  // leaving the button disarms it, so a stray Enter later does nothing
  b.addEventListener('blur', () => {
    if (b.dataset.armed !== '1') return;
    b.dataset.armed = '';
    b.textContent = label;
    b.className = 'secondary';
  });
  return b;
}

// An error line a form writes into (role=alert: a screen reader says it).
export function errorLine(id) {
  return el('p', { id, class: 'error', role: 'alert' });
}

// A labelled field: input, textarea or select, with its label bound by id.
export function field(label, control, hint) {
  return el(
    'div',
    { class: 'field' },
    el('label', { for: control.id, text: label }),
    control,
    hint ? el('small', { class: 'muted', id: `${control.id}-hint`, text: hint }) : null,
  );
}

// Parses a JSON field; throws an Error naming the field (the text stays in the form).
export function parseJsonField(name, text, { type } = {}) {
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${name}: not valid JSON (${e.message})`);
  }
  if (type === 'array' && !Array.isArray(v)) throw new Error(`${name}: must be a JSON array`);
  if (type === 'object' && (v === null || typeof v !== 'object' || Array.isArray(v))) throw new Error(`${name}: must be a JSON object`);
  return v;
}

// Loads every page of a PageCursor list (bounded: a console page shows at most max).
export async function listAll(path, max = 1000) {
  const out = [];
  let page = '';
  while (out.length < max) {
    const sep = path.includes('?') ? '&' : '?';
    const res = await api('GET', `${path}${sep}limit=100${page ? `&page=${encodeURIComponent(page)}` : ''}`);
    out.push(...res.data);
    if (!res.next_page) break;
    page = res.next_page;
  }
  return out;
}

// An RFC 3339 UTC time from a datetime-local field's value (the browser's local time);
// '' for ''; throws an Error naming the field for anything else.
export function isoFromLocal(value, name) {
  if (!value) return '';
  const t = new Date(value);
  if (Number.isNaN(t.getTime())) throw new Error(`${name}: not a date and time`);
  return t.toISOString();
}

export function when(ts) {
  return ts ? new Date(ts).toLocaleString() : '—';
}

// Fills the page's main element; absent parts (null, false) are left out, lists flattened.
export function fillMain(main, ...children) {
  main.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

// The "Include archived" checkbox of a list at path (the choice lives in the address).
export function archivedFilter(path, archived) {
  return el(
    'div',
    { class: 'filters' },
    el('label', {}, el('input', {
      type: 'checkbox',
      id: 'filter-archived',
      checked: archived,
      onchange: (e) => (location.hash = href(path, { archived: e.target.checked ? '1' : '' })),
    }), ' Include archived'),
  );
}

// One page of a PageCursor list at /v1{path} as the hash's params ask (archived, page):
// {res, archived, query} where query is what pager() needs.
export async function listPage(path, params) {
  const archived = params.get('archived') === '1';
  const q = new URLSearchParams({ limit: '20' });
  if (params.get('page')) q.set('page', params.get('page'));
  if (archived) q.set('include_archived', 'true');
  const res = await api('GET', `${path}?${q}`);
  return { res, archived, query: { archived: archived ? '1' : '', page: params.get('page') ?? '', trail: params.get('trail') ?? '' } };
}

// Runs a form's submit: err emptied, then act(); what act() throws is said in err.
export function onSubmit(form, err, act) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    try {
      await act();
    } catch (e) {
      err.textContent = e.message;
    }
  });
}
