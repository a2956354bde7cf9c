// Agents: the list, a new agent, an agent's page (edit = a new version, the versions),
// and two versions compared field by field.
import { api } from './api.js';
import { age, el } from './render.js';
import { diffLines } from './diff.js';
import { archivedFilter, errorLine, fillMain, field, href, listAll, listPage, pager, parseJsonField, table, twoStep, when } from './ui.js';

const enc = encodeURIComponent;
// The fields a version is made of, in the order a person reads them (api.md §2.1).
const FIELDS = ['name', 'description', 'model', 'system', 'tools', 'mcp_servers', 'skills', 'multiagent', 'execution_identity', 'metadata'];
const JSON_FIELDS = [
  ['tools', 'array'],
  ['mcp_servers', 'array'],
  ['skills', 'array'],
  ['metadata', 'object'],
];

const modelId = (m) => (typeof m === 'string' ? m : (m?.id ?? ''));

export async function showAgents(main, params) {
  const { res, archived, query } = await listPage('/agents', params);
  const rows = res.data.map((a) =>
    el(
      'tr',
      { 'data-agent-id': a.id },
      el('td', {}, el('a', { href: `#/agents/${enc(a.id)}`, text: a.name || a.id })),
      el('td', { class: 'mono', text: modelId(a.model) }),
      el('td', { text: `v${a.version}` }, a.archived_at ? el('span', { class: 'badge', text: 'archived' }) : null),
      el('td', { title: a.updated_at, text: age(a.updated_at) }),
    ),
  );
  fillMain(main, 
    el('div', { class: 'page-head' }, el('h1', { text: 'Agents' }), el('a', { id: 'new-agent', class: 'button', href: '#/agents/new', text: 'New agent' })),
    archivedFilter('/agents', archived),
    table(['Agent', 'Model', 'Version', 'Updated'], rows, 'No agents here.'),
    pager('/agents', query, res),
  );
}

// The form for a new agent and for a new version of one (cur: the latest version).
function agentForm(cur, onSubmit) {
  const id = (n) => `agent-${n}`;
  const name = el('input', { id: id('name'), name: 'name', required: true, value: cur?.name ?? '' });
  const model = el('input', { id: id('model'), name: 'model', required: true, class: 'mono', value: modelId(cur?.model) });
  const description = el('input', { id: id('description'), name: 'description', value: cur?.description ?? '' });
  const system = el('textarea', { id: id('system'), name: 'system', rows: 8 });
  system.value = cur?.system ?? '';
  const json = {};
  for (const [k] of JSON_FIELDS) {
    json[k] = el('textarea', { id: id(k), name: k, rows: k === 'tools' ? 6 : 3, class: 'mono', spellcheck: 'false' });
    json[k].value = JSON.stringify(cur?.[k] ?? (k === 'metadata' ? {} : []), null, 2);
  }
  const err = errorLine('agent-error');
  const form = el(
    'form',
    { id: 'agent-form', class: 'card form' },
    field('Name', name),
    field('Model', model, 'The model id, e.g. claude-sonnet-4-5'),
    field('Description', description),
    field('System prompt', system),
    field('Tools (JSON array)', json.tools),
    field('MCP servers (JSON array)', json.mcp_servers),
    field('Skills (JSON array)', json.skills),
    field('Metadata (JSON object of strings)', json.metadata),
    el('div', { class: 'row' }, el('button', { type: 'submit', text: cur ? 'Save as a new version' : 'Create agent' })),
    err,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    let body;
    try {
      body = { name: name.value };
      // the server resolves a bare model id with default options: keep the current
      // options when only the id changed, and send nothing when nothing did
      if (!cur) body.model = model.value;
      else if (model.value !== modelId(cur.model)) body.model = typeof cur.model === 'object' ? { ...cur.model, id: model.value } : model.value;
      if (description.value !== (cur?.description ?? '')) body.description = description.value === '' ? null : description.value;
      if (system.value !== (cur?.system ?? '')) body.system = system.value === '' ? null : system.value;
      for (const [k, type] of JSON_FIELDS) {
        const v = parseJsonField(k, json[k].value, { type });
        if (!cur || JSON.stringify(v) !== JSON.stringify(cur[k])) body[k] = v;
      }
      if (cur) body.version = cur.version; // someone else's edit in between: 409, not lost
    } catch (e) {
      err.textContent = e.message;
      return;
    }
    try {
      await onSubmit(body);
    } catch (e) {
      err.textContent = e.message;
    }
  });
  return form;
}

export async function showNewAgent(main) {
  const form = agentForm(null, async (body) => {
    const a = await api('POST', '/agents', body);
    location.hash = `#/agents/${enc(a.id)}`;
  });
  fillMain(main, el('h1', { text: 'New agent' }), form);
  form.querySelector('input').focus();
}

export async function showAgent(main, agentId) {
  const a = await api('GET', `/agents/${enc(agentId)}`);
  const versions = await listAll(`/agents/${enc(agentId)}/versions`, 500);
  versions.sort((x, y) => y.version - x.version);
  const saved = el('p', { id: 'agent-saved', class: 'ok', role: 'status' });
  const form = a.archived_at
    ? el('p', { class: 'muted', text: 'This agent is archived: it is read-only.' })
    : agentForm(a, async (body) => {
        const n = await api('POST', `/agents/${enc(agentId)}`, body);
        if (n.version === a.version) {
          saved.textContent = 'Nothing changed: no new version.';
          return;
        }
        location.hash = `#/agents/${enc(agentId)}?saved=${n.version}`;
      });
  const opts = (sel) => versions.map((v) => el('option', { value: v.version, selected: v.version === sel, text: `v${v.version} · ${when(v.updated_at)}` }));
  const older = versions[1]?.version ?? a.version;
  const selA = el('select', { id: 'compare-a', name: 'a' }, opts(older));
  const selB = el('select', { id: 'compare-b', name: 'b' }, opts(a.version));
  const compare = el(
    'form',
    { id: 'compare', class: 'filters', 'aria-label': 'Compare two versions' },
    el('label', { for: 'compare-a', text: 'Compare' }),
    selA,
    el('label', { for: 'compare-b', text: 'with' }),
    selB,
    el('button', { type: 'submit', text: 'Compare' }),
  );
  compare.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = href(`/agents/${enc(agentId)}/compare`, { a: selA.value, b: selB.value });
  });
  const archiveErr = errorLine('archive-error');
  const archive = a.archived_at
    ? el('span', { class: 'badge', text: 'archived' })
    : twoStep({ id: 'archive-agent' }, 'Archive…', 'Archive this agent for good', async () => {
        try {
          await api('POST', `/agents/${enc(agentId)}/archive`, {});
          await showAgent(main, agentId);
        } catch (e) {
          archiveErr.textContent = e.message;
        }
      });
  const rows = versions.map((v) =>
    el(
      'tr',
      { 'data-version': v.version },
      el('td', { text: `v${v.version}` }),
      el('td', { text: v.name }),
      el('td', { class: 'mono', text: modelId(v.model) }),
      el('td', { text: when(v.updated_at) }),
    ),
  );
  const justSaved = new URLSearchParams(location.hash.split('?')[1] ?? '').get('saved');
  if (justSaved) saved.textContent = `Saved as version ${justSaved}.`;
  fillMain(main, 
    el('p', {}, el('a', { href: '#/agents', text: '← Agents' })),
    el('div', { class: 'page-head' }, el('h1', { id: 'agent-title', text: a.name }), archive),
    el(
      'dl',
      { class: 'facts' },
      el('dt', { text: 'Agent' }), el('dd', { class: 'mono', text: a.id }),
      el('dt', { text: 'Version' }), el('dd', { id: 'agent-version', text: String(a.version) }),
      el('dt', { text: 'Model' }), el('dd', { class: 'mono', text: modelId(a.model) }),
      el('dt', { text: 'Created' }), el('dd', { text: when(a.created_at) }),
    ),
    archiveErr,
    saved,
    el('h2', { text: 'Versions' }),
    compare,
    table(['Version', 'Name', 'Model', 'Saved'], rows),
    el('h2', { text: a.archived_at ? 'Latest version' : 'Edit (saves a new version)' }),
    form,
  );
}

// How a field's value reads in a diff: strings as they are, the rest as indented JSON.
const asText = (v) => (v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v, null, 2));

export async function showAgentCompare(main, agentId, params) {
  const va = Number.parseInt(params.get('a') ?? '', 10);
  const vb = Number.parseInt(params.get('b') ?? '', 10);
  if (!(va >= 1 && vb >= 1)) throw new Error('compare: two version numbers are needed (?a=1&b=2)');
  const [a, b] = await Promise.all([
    api('GET', `/agents/${enc(agentId)}?version=${va}`),
    api('GET', `/agents/${enc(agentId)}?version=${vb}`),
  ]);
  const same = [];
  const blocks = [];
  for (const f of FIELDS) {
    const ta = asText(a[f]);
    const tb = asText(b[f]);
    if (ta === tb) {
      same.push(f);
      continue;
    }
    const lines = diffLines(ta, tb).map(([op, line]) =>
      el('div', { class: `dl ${op === '-' ? 'del' : op === '+' ? 'add' : 'ctx'}` }, el('span', { class: 'op', 'aria-hidden': 'true', text: op === ' ' ? ' ' : op }), el('span', { class: 'sr-only', text: op === '-' ? 'removed: ' : op === '+' ? 'added: ' : '' }), line),
    );
    blocks.push(el('section', { class: 'diff', 'data-field': f }, el('h2', { text: f }), el('pre', { class: 'io diff-body' }, lines)));
  }
  fillMain(main, 
    el('p', {}, el('a', { href: `#/agents/${enc(agentId)}`, text: `← ${b.name}` })),
    el('h1', { text: `${b.name}: version ${va} and version ${vb}` }),
    blocks.length === 0
      ? el('p', { id: 'diff-none', text: 'The two versions are the same.' })
      : el('p', { id: 'diff-summary', text: `${blocks.length} field${blocks.length === 1 ? '' : 's'} changed.` }),
    ...blocks,
    same.length ? el('p', { class: 'muted', id: 'diff-same', text: `Unchanged: ${same.join(', ')}.` }) : null,
  );
}
