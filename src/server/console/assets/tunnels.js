// Tunnels: the list (with how many gateway connections each has now), a new tunnel, and
// a tunnel's page: its connections (gateway, version, since), the token revealed or
// rotated only after a second, explicit click, and archive.
import { api } from './api.js';
import { age, el } from './render.js';
import { archivedFilter, errorLine, fillMain, field, listPage, onSubmit, pager, table, twoStep, when } from './ui.js';

const enc = encodeURIComponent;
const CONNS_EVERY_MS = 5000;

export async function showTunnels(main, params) {
  const { res, archived, query } = await listPage('/tunnels', params);
  // each row's live connections (airlock's own route; a page holds at most 20 tunnels)
  const conns = await Promise.all(
    res.data.map((t) => (t.archived_at ? null : api('GET', `/tunnels/${enc(t.id)}/connections`).catch(() => null))),
  );
  const rows = res.data.map((t, i) =>
    el(
      'tr',
      { 'data-tunnel-id': t.id },
      el('td', {}, el('a', { href: `#/tunnels/${enc(t.id)}`, text: t.display_name || t.id })),
      el('td', { class: 'mono', text: t.domain }),
      el('td', { class: 'conns', text: conns[i] ? String(conns[i].data.length) : '—' }, t.archived_at ? el('span', { class: 'badge', text: 'archived' }) : null),
      el('td', { title: t.created_at, text: age(t.created_at) }),
    ),
  );
  const name = el('input', { id: 'tunnel-name', name: 'display_name', maxlength: 255 });
  const err = errorLine('tunnel-error');
  const form = el(
    'form',
    { id: 'tunnel-form', class: 'card form' },
    el('h2', { text: 'New tunnel' }),
    field('Name (optional)', name),
    el('div', { class: 'row' }, el('button', { type: 'submit', text: 'Create tunnel' })),
    err,
  );
  onSubmit(form, err, async () => {
    const t = await api('POST', '/tunnels', name.value ? { display_name: name.value } : {});
    location.hash = `#/tunnels/${enc(t.id)}`;
  });
  fillMain(
    main,
    el('h1', { text: 'Tunnels' }),
    archivedFilter('/tunnels', archived),
    table(['Tunnel', 'Domain', 'Connections up', 'Created'], rows, 'No tunnels here.'),
    pager('/tunnels', query, res),
    form,
  );
}

export async function showTunnel(main, tunnelId) {
  const t = await api('GET', `/tunnels/${enc(tunnelId)}`);
  const connBody = el('div', { id: 'connections', 'aria-live': 'polite' });
  const connErr = errorLine('connections-error');
  async function refresh() {
    try {
      const c = await api('GET', `/tunnels/${enc(tunnelId)}/connections`);
      const rows = c.data.map((k) =>
        el(
          'tr',
          { 'data-connection-id': k.id },
          el('td', { class: 'mono', text: k.id }),
          el('td', { class: 'mono', text: k.gateway_id }),
          el('td', { text: k.connection_index }),
          el('td', { class: 'mono gw-version', text: k.gateway_version }),
          el('td', { class: 'mono', text: k.peer }),
          el('td', { title: k.connected_at, text: age(k.connected_at) }),
          el('td', { text: String(k.open_streams) }, k.draining ? el('span', { class: 'badge', text: 'draining' }) : null),
        ),
      );
      const versions = [...new Set(c.data.map((k) => k.gateway_version))];
      connBody.replaceChildren(
        el('p', { id: 'connections-summary', text: `${c.data.length} connection${c.data.length === 1 ? '' : 's'} up${versions.length ? `; gateway version${versions.length === 1 ? '' : 's'} ${versions.join(', ')}` : ''}.` }),
        c.edge_running ? table(['Connection', 'Gateway', 'Index', 'Version', 'From', 'Since', 'Open streams'], rows, 'No gateway is connected.') : el('p', { class: 'muted', text: 'The tunnel edge is not running on this server (tunnel.listen): no gateway can connect.' }),
      );
      connBody.dataset.updated = String(Date.now());
      connErr.textContent = '';
    } catch (e) {
      connErr.textContent = e.message;
    }
  }
  let timer = null;
  if (!t.archived_at) {
    await refresh();
    timer = setInterval(refresh, CONNS_EVERY_MS);
  }

  // the token: shown only after a second click, and only until the page is left
  const tokenOut = el('div', { id: 'token-out' });
  const tokenErr = errorLine('token-error');
  const showToken = (tok, what) => {
    const input = el('input', { id: 'tunnel-token', readonly: true, class: 'mono', value: tok.tunnel_token, size: 60, 'aria-describedby': 'tunnel-token-note' });
    tokenOut.replaceChildren(
      el(
        'div',
        { class: 'secret', role: 'status' },
        el('label', { for: 'tunnel-token', text: `${what} (${tok.id})` }),
        ' ',
        input,
        ' ',
        el('button', { type: 'button', id: 'hide-token', class: 'secondary', text: 'Hide', onclick: () => tokenOut.replaceChildren() }),
        el('p', { id: 'tunnel-token-note', text: 'Anyone with this token can connect a gateway for this tunnel. Put it in the gateway\'s token_file.' }),
      ),
    );
    input.focus();
    input.select();
  };
  const reveal = twoStep({ id: 'reveal-token' }, 'Reveal token…', 'Show the token on screen', async () => {
    tokenErr.textContent = '';
    try {
      showToken(await api('POST', `/tunnels/${enc(tunnelId)}/reveal_token`, {}), 'The tunnel token');
    } catch (e) {
      tokenErr.textContent = e.message;
    }
  });
  const reason = el('input', { id: 'rotate-reason', name: 'reason', maxlength: 1024, placeholder: 'e.g. laptop lost' });
  const rotate = twoStep({ id: 'rotate-token' }, 'Rotate token…', 'Rotate: the old token stops working now', async () => {
    tokenErr.textContent = '';
    try {
      const tok = await api('POST', `/tunnels/${enc(tunnelId)}/rotate_token`, reason.value ? { reason: reason.value } : {});
      reason.value = '';
      showToken(tok, 'The new tunnel token');
    } catch (e) {
      tokenErr.textContent = e.message;
    }
  });
  const tokenBox = el(
    'section',
    { class: 'card form', id: 'token', 'aria-label': 'Tunnel token' },
    el('h2', { text: 'Token' }),
    el('p', { class: 'muted', text: 'Rotating refuses the old token for new connections at once; gateways already connected stay up until they reconnect.' }),
    el('div', { class: 'row' }, reveal),
    field('Reason for rotating (optional, kept in the audit log)', reason),
    el('div', { class: 'row' }, rotate),
    tokenErr,
    tokenOut,
  );

  const archiveErr = errorLine('archive-error');
  const archive = t.archived_at
    ? el('span', { class: 'badge', text: 'archived' })
    : twoStep({ id: 'archive-tunnel' }, 'Archive…', 'Archive: close its connections for good', async () => {
        try {
          await api('POST', `/tunnels/${enc(tunnelId)}/archive`, {});
          window.dispatchEvent(new HashChangeEvent('hashchange'));
        } catch (e) {
          archiveErr.textContent = e.message;
        }
      });
  fillMain(
    main,
    el('p', {}, el('a', { href: '#/tunnels', text: '← Tunnels' })),
    el('div', { class: 'page-head' }, el('h1', { id: 'tunnel-title', text: t.display_name ?? t.id }), archive),
    el(
      'dl',
      { class: 'facts' },
      el('dt', { text: 'Tunnel' }), el('dd', { class: 'mono', text: t.id }),
      el('dt', { text: 'Domain' }), el('dd', { class: 'mono', text: t.domain }),
      el('dt', { text: 'Created' }), el('dd', { text: when(t.created_at) }),
    ),
    archiveErr,
    t.archived_at ? null : [el('h2', { text: 'Gateway connections' }), connBody, connErr, tokenBox],
  );
  return () => clearInterval(timer);
}
