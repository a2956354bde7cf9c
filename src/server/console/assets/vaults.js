// Vaults and their credentials. A credential's secret is write-only: the form sends it
// once and forgets it, the API never returns it, and no page ever shows it.
import { api } from './api.js';
import { age, el } from './render.js';
import { archivedFilter, errorLine, fillMain, field, listPage, onSubmit, pager, table, twoStep, when } from './ui.js';

const enc = encodeURIComponent;
const rerun = () => window.dispatchEvent(new HashChangeEvent('hashchange'));

export async function showVaults(main, params) {
  const { res, archived, query } = await listPage('/vaults', params);
  const rows = res.data.map((v) =>
    el(
      'tr',
      { 'data-vault-id': v.id },
      el('td', {}, el('a', { href: `#/vaults/${enc(v.id)}`, text: v.display_name || v.id })),
      el('td', { class: 'mono', text: v.id }, v.archived_at ? el('span', { class: 'badge', text: 'archived' }) : null),
      el('td', { title: v.created_at, text: age(v.created_at) }),
    ),
  );
  const name = el('input', { id: 'vault-name', name: 'display_name', required: true, maxlength: 255 });
  const err = errorLine('vault-error');
  const form = el(
    'form',
    { id: 'vault-form', class: 'card form' },
    el('h2', { text: 'New vault' }),
    field('Name', name),
    el('div', { class: 'row' }, el('button', { type: 'submit', text: 'Create vault' })),
    err,
  );
  onSubmit(form, err, async () => {
    const v = await api('POST', '/vaults', { display_name: name.value });
    location.hash = `#/vaults/${enc(v.id)}`;
  });
  fillMain(main, 
    el('h1', { text: 'Vaults' }),
    archivedFilter('/vaults', archived),
    table(['Vault', 'Id', 'Created'], rows, 'No vaults here.'),
    pager('/vaults', query, res),
    form,
  );
}

export async function showVault(main, vaultId, params) {
  const v = await api('GET', `/vaults/${enc(vaultId)}`);
  const archived = params.get('archived') === '1';
  const creds = await api('GET', `/vaults/${enc(vaultId)}/credentials?limit=100${archived ? '&include_archived=true' : ''}`);
  const actionErr = errorLine('credential-action-error');
  const rows = creds.data.map((c) =>
    el(
      'tr',
      { 'data-credential-id': c.id },
      el('td', { text: c.display_name ?? '—' }),
      el('td', { class: 'mono', text: c.auth?.mcp_server_url ?? '' }),
      el('td', { text: c.auth?.type ?? '' }),
      // what the API says about the secret: never the secret itself
      el('td', { class: 'muted', text: c.archived_at ? 'purged' : 'set (write-only)' }),
      el('td', { title: c.created_at, text: age(c.created_at) }),
      el(
        'td',
        {},
        c.archived_at
          ? el('span', { class: 'badge', text: 'archived' })
          : twoStep({ 'data-action': 'archive-credential', 'aria-label': `Archive credential ${c.display_name ?? c.id}` }, 'Archive…', 'Archive: the secret is purged', async () => {
              try {
                await api('POST', `/vaults/${enc(vaultId)}/credentials/${enc(c.id)}/archive`, {});
                rerun();
              } catch (e) {
                actionErr.textContent = e.message;
              }
            }),
      ),
    ),
  );

  const cname = el('input', { id: 'cred-name', name: 'display_name', maxlength: 255 });
  const url = el('input', { id: 'cred-url', name: 'mcp_server_url', type: 'url', required: true, class: 'mono', placeholder: 'https://mcp.example.com/mcp' });
  // a password field: not echoed, not offered to autofill, not kept by the page
  const token = el('input', { id: 'cred-token', name: 'token', type: 'password', required: true, autocomplete: 'off', spellcheck: 'false' });
  const err = errorLine('cred-error');
  const done = el('p', { id: 'cred-done', class: 'ok', role: 'status' });
  const form = el(
    'form',
    { id: 'cred-form', class: 'card form' },
    el('h2', { text: 'New credential (static bearer token for an MCP server)' }),
    field('Name (optional)', cname),
    field('MCP server URL', url),
    field('Token', token, 'Write-only: stored sealed, sent to that server only, never shown again.'),
    el('div', { class: 'row' }, el('button', { type: 'submit', text: 'Add credential' })),
    err,
    done,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    done.textContent = '';
    const body = { auth: { type: 'static_bearer', mcp_server_url: url.value, token: token.value } };
    if (cname.value) body.display_name = cname.value;
    try {
      await api('POST', `/vaults/${enc(vaultId)}/credentials`, body);
      token.value = '';
      rerun();
    } catch (e) {
      // the URL and name stay for a retry; the secret is dropped either way
      token.value = '';
      err.textContent = e.message;
    }
  });

  const archiveErr = errorLine('archive-error');
  const archive = v.archived_at
    ? el('span', { class: 'badge', text: 'archived' })
    : twoStep({ id: 'archive-vault' }, 'Archive…', 'Archive this vault and purge its secrets', async () => {
        try {
          await api('POST', `/vaults/${enc(vaultId)}/archive`, {});
          rerun();
        } catch (e) {
          archiveErr.textContent = e.message;
        }
      });
  fillMain(main, 
    el('p', {}, el('a', { href: '#/vaults', text: '← Vaults' })),
    el('div', { class: 'page-head' }, el('h1', { id: 'vault-title', text: v.display_name }), archive),
    el(
      'dl',
      { class: 'facts' },
      el('dt', { text: 'Vault' }), el('dd', { class: 'mono', text: v.id }),
      el('dt', { text: 'Created' }), el('dd', { text: when(v.created_at) }),
    ),
    archiveErr,
    el('h2', { text: 'Credentials' }),
    archivedFilter(`/vaults/${enc(vaultId)}`, archived),
    table(['Name', 'MCP server', 'Type', 'Secret', 'Created', ''], rows, 'No credentials in this vault.'),
    actionErr,
    v.archived_at ? null : form,
  );
}
