// The console's entry point: sign-in, then a hash router over the pages.
import { signIn, signOut, whoami } from './api.js';
import { el } from './render.js';
import { showSessions } from './sessions.js';
import { showSession } from './session.js';
import { showAgent, showAgentCompare, showAgents, showNewAgent } from './agents.js';
import { showEnvironment, showEnvironments } from './environments.js';
import { showVault, showVaults } from './vaults.js';
import { showTunnel, showTunnels } from './tunnels.js';
import { showAudit } from './audit.js';

const main = document.getElementById('main');
const who = document.getElementById('who');
const nav = document.getElementById('nav');
const signoutBtn = document.getElementById('signout');
let current = null; // the page's cleanup (a session page closes its stream)

function leave() {
  current?.();
  current = null;
}

function showSignIn(message) {
  leave();
  who.textContent = '';
  nav.hidden = true;
  signoutBtn.hidden = true;
  const key = el('input', { id: 'key', name: 'key', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const err = el('p', { id: 'signin-error', class: 'error', role: 'alert', text: message ?? '' });
  const form = el(
    'form',
    { id: 'signin', class: 'card narrow' },
    el('h1', { text: 'Sign in' }),
    el('label', { for: 'key', text: 'Server API key' }),
    key,
    el('button', { type: 'submit', text: 'Sign in' }),
    err,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    try {
      await signIn(key.value);
      key.value = '';
      await route();
    } catch (e) {
      err.textContent = e.message;
    }
  });
  main.replaceChildren(form);
  key.focus();
  // single sign-on, when the server has an OpenID provider and a client for it
  fetch('config', { credentials: 'same-origin' })
    .then((r) => (r.ok ? r.json() : {}))
    .then((c) => {
      if (!c.single_sign_on) return;
      form.insertBefore(el('p', {}, el('a', { id: 'sso', class: 'button', href: 'oidc/login', text: 'Sign in with single sign-on' })),
        form.querySelector('label'));
    })
    .catch(() => {});
}

async function route() {
  leave();
  const s = await whoami();
  if (!s) return showSignIn();
  who.textContent = `Signed in with ${s.key_id}`;
  nav.hidden = false;
  signoutBtn.hidden = false;
  const hash = location.hash || '#/sessions';
  const [path, query] = hash.slice(1).split('?');
  const params = new URLSearchParams(query ?? '');
  for (const a of nav.querySelectorAll('a')) {
    if (path.startsWith(a.getAttribute('href').slice(1))) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  try {
    for (const [re, show] of ROUTES) {
      const m = re.exec(path);
      if (!m) continue;
      const args = m.slice(1).map((x) => decodeURIComponent(x));
      current = (await show(main, ...args, params)) ?? null;
      return;
    }
    main.replaceChildren(el('p', { class: 'error', role: 'alert', text: `No page at ${path}.` }));
  } catch (e) {
    main.replaceChildren(el('p', { class: 'error', role: 'alert', text: e.message }));
  }
}

// The pages: a pattern on the hash's path, and what shows it (its captures, then the
// query). A page may return its cleanup (the session page closes its stream).
const ROUTES = [
  [/^\/sessions\/([^/]+)$/, showSession],
  [/^\/sessions$/, showSessions],
  [/^\/agents$/, showAgents],
  [/^\/agents\/new$/, showNewAgent],
  [/^\/agents\/([^/]+)\/compare$/, showAgentCompare],
  [/^\/agents\/([^/]+)$/, showAgent],
  [/^\/environments$/, showEnvironments],
  [/^\/environments\/([^/]+)$/, showEnvironment],
  [/^\/vaults$/, showVaults],
  [/^\/vaults\/([^/]+)$/, showVault],
  [/^\/tunnels$/, showTunnels],
  [/^\/tunnels\/([^/]+)$/, showTunnel],
  [/^\/audit$/, showAudit],
];

signoutBtn.addEventListener('click', async () => {
  try {
    await signOut();
  } finally {
    showSignIn('Signed out.');
  }
});
window.addEventListener('airlock:signed-out', () => showSignIn('Your session ended; sign in again.'));
window.addEventListener('hashchange', () => route());
route();
