// The operator's token: asked for once with a small form (the #token-dialog, not
// window.prompt), kept in localStorage, and sent as `Authorization: Bearer …` on the
// page's requests (and as `?access_token=` on /ws when reads need it, a browser's
// WebSocket having no headers). A 401 asks again.

import { $ } from './format.js';

const TOKEN_KEY = 'streamcity.token';
const NAME_KEY = 'streamcity.operator';

// Whether the server answered a read with 401 (reads need the token).
export const access = { readsNeedToken: false };

let asking = null;           // the open form's promise (one form at a time)
const waiters = new Set();   // whenToken() callers

function load(key) {
  try { return localStorage.getItem(key) || null; } catch { return null; }
}
function store(key, value) {
  try { if (value) localStorage.setItem(key, value); else localStorage.removeItem(key); } catch { /* private mode: kept for this page only */ }
}
let memoryToken = null; // when localStorage is not available

/** The token in use, or null. */
export const token = () => load(TOKEN_KEY) || memoryToken;

/** Who acknowledges (the name given in the form; "operator" by default). */
export const operatorName = () => load(NAME_KEY) || 'operator';

function setToken(t) {
  memoryToken = t || null;
  store(TOKEN_KEY, t);
  for (const w of waiters) w(t);
  waiters.clear();
}

/** Resolves with the next token given (from any form). */
export function whenToken() {
  return new Promise((resolve) => waiters.add(resolve));
}

/**
 * Shows the token form with `reason`; resolves with the token given, or null when
 * cancelled. While a form is open, every caller shares its answer.
 */
export function askToken(reason) {
  if (asking) return asking;
  const dialog = $('token-dialog'), form = $('token-form'), input = $('token-input'), name = $('token-name');
  $('token-reason').textContent = reason || '';
  input.value = '';
  name.value = load(NAME_KEY) || '';
  asking = new Promise((resolve) => {
    const finish = (value) => {
      form.removeEventListener('submit', onSubmit);
      $('token-cancel').removeEventListener('click', onCancel);
      $('token-clear').removeEventListener('click', onClear);
      dialog.removeEventListener('cancel', onCancel);
      if (dialog.open) dialog.close();
      asking = null;
      resolve(value);
    };
    const onSubmit = (e) => {
      e.preventDefault();
      const t = input.value.trim();
      if (!t) { input.focus(); return; }
      store(NAME_KEY, name.value.trim().slice(0, 100));
      setToken(t);
      finish(t);
    };
    const onCancel = (e) => { e.preventDefault(); finish(null); };
    const onClear = () => { setToken(null); finish(null); };
    form.addEventListener('submit', onSubmit);
    $('token-cancel').addEventListener('click', onCancel);
    $('token-clear').addEventListener('click', onClear);
    dialog.addEventListener('cancel', onCancel); // Escape
  });
  if (typeof dialog.showModal === 'function') dialog.showModal(); else dialog.setAttribute('open', '');
  input.focus();
  return asking;
}

/**
 * fetch() with the token (when one is kept). A 401 asks for the token (saying `why`
 * the first time, that it was refused after) and tries again; resolves with the last
 * answer (a 401 still when the form was cancelled).
 */
export async function authFetch(url, options = {}, why = "This dashboard needs the operator's token.") {
  for (let attempt = 0; ; attempt++) {
    const headers = new Headers(options.headers || {});
    const t = token();
    if (t) headers.set('Authorization', `Bearer ${t}`);
    const res = await fetch(url, { ...options, headers });
    if (res.status !== 401 || attempt >= 4) return res;
    const given = await askToken(t ? 'The token was refused: enter it again.' : why);
    if (!given) return res;
  }
}

/**
 * `?access_token=…` for /ws ('' without a token), after `sep`. Sent whenever a token
 * is kept: a dashboard whose reads are open ignores it (and takes it out of the URL).
 */
export function wsAuthParam(sep) {
  const t = token();
  return t ? `${sep}access_token=${encodeURIComponent(t)}` : '';
}

/**
 * Resolves once GET /api/status answers: when reads need the token, asks for it first
 * (and again while it is refused, or waits for one from the Token button when the
 * form is cancelled). Resolves with the status.
 */
export async function readAccess(onWaiting) {
  for (;;) {
    let res;
    try {
      res = await authFetch('/api/status', { cache: 'no-store' }, 'This dashboard needs the operator\'s token to show anything.');
    } catch (err) {
      onWaiting(`Could not reach the server (${err.message}); retrying…`);
      await new Promise((r) => setTimeout(r, 5000));
      continue;
    }
    if (res.status === 401) {
      access.readsNeedToken = true;
      onWaiting('This dashboard needs the operator\'s token: press "Token".');
      await whenToken();
      continue;
    }
    if (res.ok) return res.json();
    onWaiting(`Could not load the status (HTTP ${res.status}); retrying…`);
    await new Promise((r) => setTimeout(r, 5000));
  }
}

$('token-button').addEventListener('click', () => {
  askToken(token() ? 'Change or forget the token kept in this browser.' : 'Give the operator\'s token (the twin\'s --api-token).');
});
