// The operator console: a few pages over the admin API of the instance that
// served it. No framework and no build step: the server embeds this file as
// it is. Elements are built with `h()` (never from HTML strings), so names and
// outputs coming from components can never inject markup.

const TOKEN_KEY = 'commerce.console.token';
const REPLAY_KEY = 'commerce.console.replay';
const SLOTS = ['pricing', 'coupon', 'order_rules'];
const PAGES = {
  policies: { title: 'Policies', render: policiesPage },
  shadow: { title: 'Shadow', render: shadowPage },
  replay: { title: 'Replay', render: replayPage },
  live: { title: 'Live numbers', render: livePage },
};

// ------------------------------------------------------------------ helpers

/** Builds an element: `h('p', {class: 'x', onclick}, 'text', child, [more])`. */
function h(tag, attrs = {}, ...children) {
  const svg = ['svg', 'polyline', 'line', 'text', 'g', 'rect', 'circle', 'title'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/** Replaces `el`'s children; null and false children are left out. */
function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const short = (sha) => (sha ? sha.slice(0, 12) : '');
const won = (n) => `${Number(n).toLocaleString('en-US')} won`;
const plural = (n, one, many = `${one}s`) => `${Number(n).toLocaleString('en-US')} ${n === 1 ? one : many}`;
const label = (p) => (p ? `${p.name}@${p.version}` : '');
const slotName = (slot) => slot.replace('_', ' ');
const slotTitle = (slot) => slotName(slot).replace(/^./, (c) => c.toUpperCase());

function when(iso) {
  if (!iso) return '';
  const at = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  const text = `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`;
  return h('time', { datetime: iso, title: at.toString() }, text, h('span', { class: 'ago' }, ` (${ago(at)})`));
}

function ago(at) {
  const s = Math.max(0, Math.round((Date.now() - at.getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** JSON with keys sorted at every level, so two answers line up. */
function pretty(value) {
  const sort = (v) => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === 'object') {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort(v[k])]));
    }
    return v;
  };
  return JSON.stringify(sort(value), null, 2);
}

// ---------------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || `HTTP_${status}`;
    this.detail = problem.detail || '';
  }
}

class Offline extends Error {
  constructor() {
    super(`The server at ${location.host} is not answering.`);
  }
}

/** A message fit for a person, whatever went wrong. */
function describe(err) {
  if (err instanceof ApiError) return `${err.status} ${err.code}: ${err.detail}`;
  if (err instanceof Offline) return err.message;
  return `Unexpected error: ${err && err.message ? err.message : err}`;
}

/**
 * Calls the admin API with the session's token. A refused token ends the
 * session; an unreachable server raises the banner and is retried until it
 * answers again.
 */
async function api(path, { method = 'GET', body, type } = {}) {
  const headers = { Authorization: `Bearer ${session.token}` };
  if (type) headers['Content-Type'] = type;
  let response;
  try {
    response = await fetch(path, { method, headers, body, cache: 'no-store' });
  } catch {
    connection.lost();
    throw new Offline();
  }
  connection.answered();
  if (response.ok) return response.status === 204 ? null : response.json();
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    problem = { detail: `${response.status} ${response.statusText}` };
  }
  const err = new ApiError(response.status, problem);
  if (response.status === 401) {
    signOut('The server no longer accepts this token (401 UNAUTHORIZED): it may have restarted with another ADMIN_TOKEN, or the token expired. Sign in again.');
  }
  throw err;
}

// --------------------------------------------------- connection and banner

const banner = {
  timer: null,
  show(kind, text, ms) {
    const el = document.getElementById('banner');
    clearTimeout(this.timer);
    el.className = `banner ${kind}`;
    el.textContent = text;
    el.hidden = false;
    if (ms) this.timer = setTimeout(() => this.hide(), ms);
  },
  hide() {
    document.getElementById('banner').hidden = true;
  },
};

/** Notices the server going away (a restart, a crash) and coming back. */
const connection = {
  down: false,
  lost() {
    if (this.down) return;
    this.down = true;
    banner.show('error', `Connection lost: the server at ${location.host} is not answering (it may be restarting). The page keeps what it last showed; retrying every 2 seconds…`);
    this.probe();
  },
  answered() {
    if (this.down) this.back();
  },
  back() {
    this.down = false;
    banner.show('ok', `The server at ${location.host} is answering again.`, 6000);
    route();
  },
  async probe() {
    while (this.down) {
      await sleep(2000);
      try {
        const r = await fetch('/healthz', { cache: 'no-store' });
        if (r.ok && this.down) this.back();
      } catch {
        // still down
      }
    }
  },
};

window.addEventListener('unhandledrejection', (event) => {
  if (event.reason instanceof Offline || event.reason instanceof ApiError) return;
  banner.show('error', describe(event.reason));
});
window.addEventListener('error', (event) => banner.show('error', `Unexpected error in the console: ${event.message}`));

// ---------------------------------------------------------- session, routes

const session = { token: sessionStorage.getItem(TOKEN_KEY) };
let page = null; // { name, stop: [] }: the page shown and what to stop when leaving it

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  session.token = null;
  signInPage(message);
}

function leave() {
  if (page) page.stop.forEach((stop) => stop());
  page = null;
}

/** Runs `fn` every `ms` while `owner` is the page shown, never two at a time. */
function every(owner, ms, fn) {
  if (owner !== page) return;
  let busy = false;
  const id = setInterval(async () => {
    if (busy || connection.down) return;
    busy = true;
    try {
      await fn();
    } catch (err) {
      if (!(err instanceof Offline)) console.warn(err);
    } finally {
      busy = false;
    }
  }, ms);
  owner.stop.push(() => clearInterval(id));
}

const pageName = () => (location.hash.match(/^#\/(\w+)/) || [])[1];

function route({ focus = false } = {}) {
  if (!session.token) return signInPage();
  const name = pageName();
  if (!PAGES[name]) {
    location.hash = '#/policies'; // hashchange shows it
    return undefined;
  }
  leave();
  const self = { name, stop: [] };
  page = self;
  const main = document.getElementById('main');
  document.getElementById('nav').hidden = false;
  document.getElementById('signout').hidden = false;
  document.getElementById('where').textContent = location.host;
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.page === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${PAGES[name].title} · commerce console`;
  fill(main);
  return PAGES[name].render(main, self).then(() => {
    if (focus && page === self) main.querySelector('h1').focus();
  }, (err) => {
    if (page !== self) return; // signed out or moved on meanwhile
    main.append(h('p', { class: 'message error', role: 'alert' }, `Cannot show ${PAGES[name].title}: ${describe(err)}`));
  });
}

function signInPage(message) {
  leave();
  document.getElementById('nav').hidden = true;
  document.getElementById('signout').hidden = true;
  document.getElementById('where').textContent = location.host;
  document.title = 'Sign in · commerce console';
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const status = h('div', { id: 'signin-message', role: 'alert' });
  if (message) status.append(h('p', { class: 'message error' }, message));
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'card signin', onsubmit: async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    fill(status, h('p', { class: 'muted' }, 'Checking the token…'));
    submit.disabled = true;
    try {
      const r = await fetch('/api/v1/admin/console/slots', { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' });
      if (r.status === 401) {
        fill(status, h('p', { class: 'message error' },
          'Wrong token: the server refused it (401 UNAUTHORIZED). Use the ADMIN_TOKEN this deployment runs with, or a user token with the admin role.'));
        input.select();
        return;
      }
      if (!r.ok) {
        const problem = await r.json().catch(() => ({}));
        fill(status, h('p', { class: 'message error' }, `The server answered ${describe(new ApiError(r.status, problem))}`));
        return;
      }
      session.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      if (PAGES[pageName()]) route();
      else location.hash = '#/policies'; // hashchange shows it
    } catch {
      fill(status, h('p', { class: 'message error' }, `Cannot reach the server at ${location.host}. Is it running?`));
    } finally {
      submit.disabled = false;
    }
  } },
  h('h1', {}, 'Sign in'),
  h('p', {}, 'Paste the admin token of this deployment (its ', h('code', {}, 'ADMIN_TOKEN'),
    ') or a user token with the ', h('code', {}, 'admin'), ' role. It stays in this browser tab only (session storage) and is sent as a bearer token to this server.'),
  h('label', { for: 'token' }, 'Admin token'),
  h('div', { class: 'row' }, input, submit),
  status);
  fill(document.getElementById('main'), form);
  input.focus();
}

// ----------------------------------------------------- components and drops

/**
 * A drop zone with a file picker: `onfile(file)` when a file is dropped or
 * picked. Keyboard users reach the picker by Tab.
 */
function fileChooser(id, onfile) {
  const name = h('span', { class: 'file', id: `${id}-name` }, 'no file chosen');
  const input = h('input', { type: 'file', id, accept: '.wasm,application/wasm', class: 'visually-hidden', onchange: () => {
    if (input.files[0]) pick(input.files[0]);
  } });
  const zone = h('div', { class: 'drop' },
    h('span', { class: 'muted' }, 'Drop a .wasm component here or '),
    h('label', { for: id, class: 'button' }, 'Choose a file…'), input, ' ', name);
  function pick(file) {
    name.textContent = `${file.name} (${Math.ceil(file.size / 1024)} KiB)`;
    onfile(file);
  }
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    const file = event.dataTransfer.files[0];
    if (file) pick(file);
  });
  return zone;
}

/** What the server said about a refused request, with its detail in full. */
function refusal(what, err) {
  if (!(err instanceof ApiError)) return h('div', { class: 'message error', role: 'alert' }, `${what}: ${describe(err)}`);
  const heading = err.code === 'INVALID_COMPONENT'
    ? `${what}: the server refused the component (${err.status} INVALID_COMPONENT).`
    : `${what}: ${err.status} ${err.code}.`;
  return h('div', { class: 'message error', role: 'alert' }, h('strong', {}, heading), h('pre', { class: 'detail' }, err.detail));
}

function done(text) {
  return h('div', { class: 'message ok', role: 'status' }, text);
}

// ---------------------------------------------------------------- policies

async function policiesPage(main, self) {
  const lede = h('p', { class: 'lede' });
  const grid = h('div', { class: 'slots' });
  main.append(h('h1', { tabindex: '-1' }, 'Policies'), lede, grid);
  const cards = {};
  for (const slot of SLOTS) {
    cards[slot] = slotCard(slot, () => refresh());
    grid.append(cards[slot].el);
  }
  let last = '';
  async function refresh() {
    const overview = await api('/api/v1/admin/console/slots');
    fill(lede, 'Environment ', h('b', {}, overview.environment),
      '. What each slot serves on every instance of the deployment; a change made here or through another instance shows within seconds.');
    const text = JSON.stringify(overview);
    if (text !== last) {
      last = text;
      for (const entry of overview.slots) cards[entry.slot].show(entry);
    }
  }
  await refresh();
  every(self, 3000, refresh);
}

function slotCard(slot, changed) {
  const state = h('div', { class: 'state' }, h('p', { class: 'muted' }, 'Loading…'));
  const result = h('div', { class: 'result' });
  const history = h('div', { class: 'history' });
  let file = null;
  let historyPage = 0;
  let shown = null;
  const activate = h('button', { type: 'button', class: 'primary', disabled: true, onclick: () => send('activate') }, 'Make active');
  const shadow = h('button', { type: 'button', disabled: true, onclick: () => send('shadow') }, 'Start as shadow');
  const chooser = fileChooser(`file-${slot}`, (picked) => {
    file = picked;
    activate.disabled = false;
    shadow.disabled = false;
    fill(result);
  });

  async function send(how) {
    if (!file) return;
    const path = how === 'activate' ? `/api/v1/admin/policies/${slot}` : `/api/v1/admin/policies/${slot}/shadow`;
    fill(result, h('p', { class: 'muted' }, `Uploading ${file.name}…`));
    activate.disabled = true;
    shadow.disabled = true;
    try {
      const info = await api(path, { method: 'PUT', body: file, type: 'application/wasm' });
      fill(result, done(how === 'activate'
        ? `${label(info)} is now active in ${slot} on every instance (sha256 ${short(info.sha256)}…).`
        : `${label(info)} now shadows ${slot}: see the Shadow page.`));
      await changed();
    } catch (err) {
      fill(result, refusal(`Cannot ${how === 'activate' ? 'activate' : 'shadow'} ${file.name}`, err));
    } finally {
      activate.disabled = false;
      shadow.disabled = false;
    }
  }

  async function rollback(previous) {
    if (!window.confirm(`Roll ${slot} back to ${label(previous)} on every instance?`)) return;
    try {
      const info = await api(`/api/v1/admin/policies/${slot}/rollback`, { method: 'POST' });
      fill(result, done(`${slot} rolled back: ${label(info)} is active again.`));
      await changed();
    } catch (err) {
      fill(result, refusal('Cannot roll back', err));
    }
  }

  async function loadHistory() {
    const size = 8;
    const data = await api(`/api/v1/admin/policies/${slot}/history?page=${historyPage}&size=${size}`);
    const pages = Math.max(1, Math.ceil(data.total / size));
    const rows = data.items.map((item) => h('tr', { dataset: { state: item.state } },
      h('td', { class: 'num' }, item.id),
      h('td', {}, `${item.name}@${item.version}`),
      h('td', {}, h('code', { title: item.sha256 }, short(item.sha256))),
      h('td', {}, item.source),
      h('td', {}, when(item.activated_at)),
      h('td', {}, h('span', { class: `badge ${item.state}` }, item.state.replace('_', ' ')))));
    fill(history,
      h('table', {},
        h('caption', {}, `Activation history (${plural(data.total, 'activation')})`),
        h('thead', {}, h('tr', {}, ['#', 'version', 'sha256', 'source', 'activated', 'state'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows)),
      pages > 1 ? h('div', { class: 'pager' },
        h('button', { type: 'button', class: 'quiet', disabled: historyPage === 0, onclick: () => { historyPage -= 1; loadHistory(); } }, '← Newer'),
        h('span', { class: 'muted' }, `page ${historyPage + 1} of ${pages}`),
        h('button', { type: 'button', class: 'quiet', disabled: historyPage + 1 >= pages, onclick: () => { historyPage += 1; loadHistory(); } }, 'Older →')) : null);
  }

  function show(entry) {
    shown = entry;
    const { active, previous } = entry;
    const config = Object.entries(entry.config);
    fill(state,
      h('dl', { class: 'facts' },
        h('dt', {}, 'Active'), h('dd', { class: 'active-label' }, h('b', {}, label(active))),
        h('dt', {}, 'sha256'), h('dd', {}, h('code', { class: 'sha' }, active.sha256)),
        h('dt', {}, 'Source'), h('dd', {}, active.source),
        h('dt', {}, 'Since'), h('dd', {}, when(active.loaded_at)),
        h('dt', {}, 'Contract'), h('dd', {}, `commerce:policy@${active.contract}`),
        h('dt', {}, 'Config'), h('dd', {}, config.length ? config.map(([k, v]) => h('code', { class: 'kv' }, `${k}=${v}`)) : h('span', { class: 'muted' }, 'none'))),
      h('div', { class: 'previous' },
        previous
          ? [h('span', {}, 'Previous: ', h('b', {}, label(previous)), ' ', h('code', { title: previous.sha256 }, short(previous.sha256)), ', since ', when(previous.loaded_at)),
            h('button', { type: 'button', class: 'warn', onclick: () => rollback(previous) }, `Roll back to ${label(previous)}`)]
          : h('span', { class: 'muted' }, 'No previous version to roll back to.')),
      entry.shadow
        ? h('p', { class: 'shadowing' }, 'Shadow: ', h('b', {}, label(entry.shadow)), ' runs beside it since ', when(entry.shadow.started_at), '. ', h('a', { href: '#/shadow' }, 'See divergences'))
        : null);
    loadHistory().catch((err) => fill(history, h('p', { class: 'message error' }, `Cannot load the history: ${describe(err)}`)));
  }

  const el = h('section', { class: 'card slot', id: `slot-${slot}`, 'aria-labelledby': `slot-${slot}-title` },
    h('h2', { id: `slot-${slot}-title` }, slotTitle(slot)),
    h('div', { class: 'columns' },
      h('div', {}, state,
        h('div', { class: 'upload' }, h('h3', {}, `Upload to ${slotName(slot)}`), chooser, h('div', { class: 'row' }, activate, shadow), result)),
      history));
  return { el, show, get shown() { return shown; } };
}

// ------------------------------------------------------------------ shadow

async function shadowPage(main, self) {
  const body = h('div', { class: 'shadows' });
  main.append(h('h1', { tabindex: '-1' }, 'Shadow'),
    h('p', { class: 'lede' }, 'A shadow runs a candidate beside the active version on every evaluation of its slot, never applied. Counts are the whole deployment\'s; the examples are the last divergences with the input both versions were given.'),
    body);
  const open = new Set(); // inputs the operator unfolded, kept across refreshes
  let last = '';
  async function refresh() {
    const overview = await api('/api/v1/admin/console/slots');
    const reports = await Promise.all(overview.slots.map(async (entry) => {
      if (!entry.shadow) return { entry, report: null };
      try {
        return { entry, report: await api(`/api/v1/admin/policies/${entry.slot}/shadow`) };
      } catch (err) {
        if (err instanceof ApiError && err.code === 'NO_SHADOW') return { entry, report: null };
        throw err;
      }
    }));
    const text = JSON.stringify(reports);
    if (text === last) return;
    last = text;
    fill(body, ...reports.map(({ entry, report }) => shadowCard(entry, report, open, refresh)));
  }
  await refresh();
  every(self, 2000, refresh);
}

function shadowCard(entry, report, open, refresh) {
  const slot = entry.slot;
  if (!report) {
    return h('section', { class: 'card quiet-card', id: `shadow-${slot}` },
      h('h2', {}, slotTitle(slot)),
      h('p', { class: 'muted' }, `No shadow in ${slot}: ${label(entry.active)} serves alone. Start one from `, h('a', { href: '#/policies' }, 'Policies'), '.'));
  }
  const result = h('div', { class: 'result' });
  const act = async (what) => {
    const question = what === 'promote'
      ? `Make ${report.candidate} the active ${slot} policy on every instance and stop the shadow?`
      : `Stop shadowing ${slot} with ${report.candidate}? Its counts and examples go.`;
    if (!window.confirm(question)) return;
    try {
      if (what === 'promote') {
        const info = await api(`/api/v1/admin/policies/${slot}/shadow/promote`, { method: 'POST' });
        fill(result, done(`${label(info)} is now active in ${slot}; the shadow stopped.`));
      } else {
        await api(`/api/v1/admin/policies/${slot}/shadow`, { method: 'DELETE' });
        fill(result, done(`The ${slot} shadow stopped.`));
      }
      await refresh();
    } catch (err) {
      fill(result, refusal(`Cannot ${what}`, err));
    }
  };
  const share = report.evaluated ? ((report.diverged * 100) / report.evaluated).toFixed(1) : '0.0';
  const tiles = h('div', { class: 'tiles' },
    tile('evaluated', report.evaluated),
    tile('diverged', report.diverged, `${share}%`, report.diverged ? 'bad' : ''),
    tile('failed', report.failed, null, report.failed ? 'bad' : ''),
    tile('dropped', report.dropped, 'queue full'));
  const examples = report.examples.length
    ? report.examples.map((example, i) => divergence(slot, example, i, open))
    : [h('p', { class: 'muted' }, 'No divergence yet.')];
  return h('section', { class: 'card', id: `shadow-${slot}` },
    h('h2', {}, slotTitle(slot)),
    h('p', {}, 'Candidate ', h('b', { class: 'candidate' }, report.candidate), ' ', h('code', { title: report.sha256 }, short(report.sha256)),
      ' beside active ', h('b', {}, label(entry.active)), ', since ', when(report.started_at), '.'),
    tiles,
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'primary', onclick: () => act('promote') }, `Promote ${report.candidate}`),
      h('button', { type: 'button', class: 'warn', onclick: () => act('stop') }, 'Stop shadow')),
    result,
    h('h3', {}, `Last divergences (${report.examples.length})`),
    examples);
}

function tile(name, value, note, kind = '') {
  return h('div', { class: `tile ${kind}`, dataset: { tile: name } },
    h('span', { class: 'value' }, Number(value).toLocaleString('en-US')),
    h('span', { class: 'name' }, name),
    note ? h('span', { class: 'note' }, note) : null);
}

/** One divergence: active and candidate side by side, the input folded. */
function divergence(slot, example, index, open) {
  const key = `${slot}:${example.at}:${index}`;
  const right = example.candidate_error
    ? { text: `failed: ${example.candidate_error}`, failed: true }
    : { text: pretty(example.candidate_output), failed: false };
  const details = h('details', { ontoggle: () => (details.open ? open.add(key) : open.delete(key)) },
    h('summary', {}, 'Input'), h('pre', { class: 'json' }, pretty(example.input)));
  details.open = open.has(key);
  return h('article', { class: 'example' },
    h('header', {}, h('code', {}, example.call), ' ', when(example.at), ' ',
      h('span', { class: `badge ${right.failed ? 'rolled_back' : 'diverged'}` }, right.failed ? 'candidate failed' : 'diverged')),
    sideBySide(pretty(example.active_output), right.text, right.failed),
    details);
}

/**
 * A line diff (longest common subsequence) laid out in two aligned columns:
 * lines only on one side, or changed, are marked.
 */
function sideBySide(leftText, rightText, failed) {
  const a = leftText.split('\n');
  const b = rightText.split('\n');
  const n = a.length;
  const m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const rows = [];
  let removed = [];
  let added = [];
  const flush = () => {
    for (let k = 0; k < Math.max(removed.length, added.length); k += 1) {
      rows.push([removed[k], added[k], 'changed']);
    }
    removed = [];
    added = [];
  };
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      flush();
      rows.push([a[i], b[j], 'same']);
      i += 1;
      j += 1;
    } else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) {
      added.push(b[j]);
      j += 1;
    } else {
      removed.push(a[i]);
      i += 1;
    }
  }
  flush();
  const cell = (text, side, kind) => h('td', { class: text === undefined ? 'gap' : `${side} ${kind}` }, text === undefined ? '' : text);
  return h('table', { class: `diff${failed ? ' failed' : ''}` },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Active output'), h('th', { scope: 'col' }, 'Candidate output'))),
    h('tbody', {}, rows.map(([l, r, kind]) => h('tr', {}, cell(l, 'left', kind), cell(r, 'right', kind)))));
}

// ------------------------------------------------------------------ replay

async function replayPage(main, self) {
  let file = null;
  const slot = h('select', { id: 'replay-slot' }, SLOTS.map((s) => h('option', { value: s }, s)));
  const since = h('input', { id: 'replay-since', value: '24h', size: 24, spellcheck: 'false' });
  const run = h('button', { type: 'submit', class: 'primary', disabled: true }, 'Replay');
  const result = h('div', { class: 'result' });
  const job = h('div', { id: 'replay-job' });
  const recent = h('div', { class: 'recent' });
  const chooser = fileChooser('replay-file', (picked) => {
    file = picked;
    run.disabled = false;
  });
  const form = h('form', { class: 'card', onsubmit: async (event) => {
    event.preventDefault();
    if (!file) return;
    fill(result, h('p', { class: 'muted' }, `Uploading ${file.name}…`));
    run.disabled = true;
    try {
      const started = await api(`/api/v1/admin/policies/${slot.value}/replays?since=${encodeURIComponent(since.value.trim())}`,
        { method: 'POST', body: file, type: 'application/wasm' });
      fill(result);
      sessionStorage.setItem(REPLAY_KEY, started.id);
      follow(started.id);
    } catch (err) {
      fill(result, refusal(`Cannot replay ${file.name}`, err));
    } finally {
      run.disabled = false;
    }
  } },
  h('div', { class: 'fields' },
    h('div', {}, h('label', { for: 'replay-slot' }, 'Slot'), slot),
    h('div', {}, h('label', { for: 'replay-since' }, 'Orders placed since'), since,
      h('span', { class: 'hint' }, '24h, 30m, 7d, 90s, or an RFC 3339 time'))),
  chooser, h('div', { class: 'row' }, run), result);
  main.append(h('h1', { tabindex: '-1' }, 'Replay'),
    h('p', { class: 'lede' }, 'Runs the orders recorded in a period through a component, as ', h('code', {}, 'commerce policy replay'),
      ' does, and shows what it would have changed. The replay runs on the instance that accepted it, one at a time per instance; every instance of the deployment shows its progress and can cancel it.'),
    form, job, recent);

  let followed = null;
  async function follow(id) {
    followed = id;
    for (;;) {
      if (followed !== id || page !== self) return;
      let state;
      try {
        state = await api(`/api/v1/admin/replays/${id}`);
      } catch (err) {
        if (err instanceof Offline) {
          fill(job, h('p', { class: 'message error' }, 'The server stopped answering while the replay ran; waiting for it…'));
          await sleep(2000);
          continue;
        }
        if (err instanceof ApiError && err.code === 'REPLAY_NOT_FOUND') {
          sessionStorage.removeItem(REPLAY_KEY);
          fill(job, h('div', { class: 'message error', role: 'alert' },
            'This replay is gone: finished replays are kept 30 days. Run it again.'));
          return;
        }
        fill(job, refusal('Cannot follow the replay', err));
        return;
      }
      fill(job, replayView(state, cancel));
      if (FINISHED.includes(state.status)) {
        listRecent();
        return;
      }
      await sleep(700);
    }
  }

  /** Asks for the replay to stop; the followed view shows when it has. */
  async function cancel(id, button) {
    button.disabled = true;
    try {
      await api(`/api/v1/admin/replays/${id}/cancel`, { method: 'POST' });
    } catch (err) {
      // Finished meanwhile: the next poll shows how.
      if (!(err instanceof ApiError && err.code === 'REPLAY_FINISHED')) banner.show('error', describe(err), 6000);
    }
    listRecent();
  }

  async function listRecent() {
    const jobs = await api('/api/v1/admin/replays');
    if (!jobs.length) {
      fill(recent);
      return;
    }
    fill(recent, h('table', {},
      h('caption', {}, 'Replays of the deployment'),
      h('thead', {}, h('tr', {}, ['started', 'slot', 'candidate', 'since', 'instance', 'status', 'differ', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, jobs.map((j) => h('tr', {},
        h('td', {}, when(j.created_at)), h('td', {}, j.slot), h('td', {}, j.candidate), h('td', {}, when(j.since)),
        h('td', {}, h('code', {}, j.instance)),
        h('td', {}, h('span', { class: `badge ${j.status}` }, j.status)),
        h('td', { class: 'num' }, j.report ? `${j.report.differ} of ${j.report.replayed}` : ''),
        h('td', {}, h('button', { type: 'button', class: 'quiet', onclick: () => { sessionStorage.setItem(REPLAY_KEY, j.id); follow(j.id); } }, 'Show')))))));
  }

  await listRecent();
  const remembered = sessionStorage.getItem(REPLAY_KEY);
  if (remembered) follow(remembered);
}

/** The states a replay ends in. */
const FINISHED = ['done', 'failed', 'cancelled', 'interrupted'];

function replayView(job, cancel) {
  const report = job.report;
  const percent = job.total ? Math.min(100, Math.round((job.read * 100) / job.total)) : (job.status === 'done' ? 100 : 0);
  const stopping = !FINISHED.includes(job.status) && job.cancel_requested_at;
  const head = h('p', {}, 'Replay of ', h('b', {}, job.candidate), ` in ${job.slot}, orders since `, when(job.since),
    ' on ', h('code', {}, job.instance), ': ',
    h('span', { class: `badge ${job.status}` }, stopping ? `${job.status}, stopping` : job.status),
    !FINISHED.includes(job.status) && !stopping
      ? [' ', h('button', { type: 'button', class: 'quiet', id: 'replay-cancel', onclick: (event) => cancel(job.id, event.currentTarget) }, 'Cancel')]
      : null);
  const progress = h('div', { class: 'progress-row' },
    h('progress', { max: 100, value: percent, 'aria-label': 'replay progress' }),
    h('span', { class: 'muted' }, `${job.read.toLocaleString('en-US')} of ${Number(job.total).toLocaleString('en-US')} recorded orders read (${percent}%)`));
  const parts = [head, progress];
  if (job.status === 'cancelled') parts.push(h('p', { class: 'muted' }, 'Cancelled: the report covers the orders read before it stopped.'));
  if (job.error) {
    const what = job.status === 'interrupted' ? 'The replay was interrupted' : 'The replay failed';
    parts.push(h('div', { class: 'message error', role: 'alert' }, `${what}: ${job.error}`));
  }
  if (report) {
    const share = report.replayed ? ((report.differ * 100) / report.replayed).toFixed(1) : '0.0';
    const flips = { coupon: 'coupons it would refuse', order_rules: 'orders it would reject' }[report.slot];
    parts.push(h('div', { class: 'tiles' },
      tile('replayed', report.replayed),
      tile('differ', report.differ, `${share}%`, report.differ ? 'bad' : ''),
      tile('won in total', report.money, report.slot === 'order_rules' ? 'rules move no money' : 'Σ |candidate − recorded|'),
      flips ? tile(flips, report.flips) : null,
      tile('failures', report.failed, null, report.failed ? 'bad' : '')));
    if (report.examples.length) {
      parts.push(h('table', { class: 'examples' },
        h('caption', {}, 'First differing orders'),
        h('thead', {}, h('tr', {}, ['order', 'placed', 'recorded', 'candidate', 'difference'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, report.examples.map((e) => h('tr', {},
          h('td', { class: 'num' }, e.order_id), h('td', {}, when(e.created_at)),
          h('td', {}, h('code', {}, JSON.stringify(e.recorded))), h('td', {}, h('code', {}, JSON.stringify(e.candidate))),
          h('td', { class: `num ${e.difference < 0 ? 'minus' : 'plus'}` }, `${e.difference > 0 ? '+' : ''}${won(e.difference)}`))))));
    }
  }
  if (job.text) parts.push(h('details', { open: true }, h('summary', {}, 'As commerce policy replay prints it'), h('pre', { class: 'json' }, job.text)));
  return h('section', { class: 'card', 'aria-live': 'polite' }, parts);
}

// -------------------------------------------------------------------- live

const SAMPLE_EVERY = 2000;
const SAMPLES_KEPT = 61; // two minutes

async function livePage(main, self) {
  const samples = [];
  const latency = h('div', { class: 'chart-box' });
  const table = h('div', {});
  const orders = h('div', { class: 'chart-box' });
  const coupons = h('div', { class: 'chart-box' });
  main.append(h('h1', { tabindex: '-1' }, 'Live numbers'),
    h('p', { class: 'lede' }, `This instance (${location.host}), sampled every ${SAMPLE_EVERY / 1000} seconds over the last two minutes. Counters start when the instance starts.`),
    h('section', { class: 'card' }, h('h2', {}, 'Policy call latency by slot and version'), latency, table),
    h('div', { class: 'two' },
      h('section', { class: 'card' }, h('h2', {}, 'Orders per second'), orders),
      h('section', { class: 'card' }, h('h2', {}, 'Coupon issuance per second'), coupons)));

  async function sample() {
    const stats = await api('/api/v1/admin/console/stats');
    stats.t = Date.parse(stats.at);
    const prev = samples[samples.length - 1];
    // A counter that went down means the instance restarted: start again.
    if (prev && (sum(stats.orders) < sum(prev.orders) || totalCalls(stats) < totalCalls(prev))) samples.length = 0;
    samples.push(stats);
    if (samples.length > SAMPLES_KEPT) samples.shift();
    draw();
  }

  function draw() {
    const pairs = samples.slice(1).map((s, i) => [samples[i], s]);
    // Latency: the mean of the calls made in each interval, per version.
    const versions = [...new Set(samples.flatMap((s) => s.policy_calls.map((c) => `${c.slot} · ${c.policy}`)))].sort();
    const calls = (s, key) => s.policy_calls.find((c) => `${c.slot} · ${c.policy}` === key);
    fill(latency, chart(versions.map((key) => ({
      name: key,
      points: pairs.map(([a, b]) => {
        const x = calls(a, key);
        const y = calls(b, key);
        const n = (y ? y.calls : 0) - (x ? x.calls : 0);
        return [b.t, n > 0 ? ((y.seconds - (x ? x.seconds : 0)) * 1000) / n : null];
      }),
    })), { unit: 'ms', empty: 'No policy calls yet: place an order.' }));
    const first = samples[0];
    const lastSample = samples[samples.length - 1];
    const span = lastSample && first && lastSample.t > first.t ? (lastSample.t - first.t) / 1000 : 0;
    fill(table, h('table', { class: 'latency' },
      h('caption', {}, span ? `Over the last ${Math.round(span)} seconds` : 'Waiting for a second sample…'),
      h('thead', {}, h('tr', {}, ['slot', 'version', 'calls/s', 'mean', 'p50', 'p99', 'failed'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, (lastSample ? lastSample.policy_calls : []).map((c) => {
        const before = calls(first, `${c.slot} · ${c.policy}`);
        const n = c.calls - (before ? before.calls : 0);
        const seconds = c.seconds - (before ? before.seconds : 0);
        const buckets = c.buckets.map((b) => {
          const was = before ? before.buckets.find((x) => x.le === b.le) : null;
          return { le: b.le, count: b.count - (was ? was.count : 0) };
        });
        return h('tr', {},
          h('td', {}, c.slot), h('td', {}, c.policy),
          h('td', { class: 'num' }, span ? (n / span).toFixed(1) : '–'),
          h('td', { class: 'num' }, n ? ms((seconds * 1000) / n) : '–'),
          h('td', { class: 'num' }, quantile(buckets, n, 0.5)),
          h('td', { class: 'num' }, quantile(buckets, n, 0.99)),
          h('td', { class: 'num' }, c.failed));
      }))));
    const rates = (field) => {
      const names = [...new Set(samples.flatMap((s) => Object.keys(s[field])))].sort();
      return names.map((name) => ({
        name,
        points: pairs.map(([a, b]) => [b.t, ((b[field][name] || 0) - (a[field][name] || 0)) / ((b.t - a.t) / 1000)]),
      }));
    };
    fill(orders, chart(rates('orders'), { unit: '/s', empty: 'No orders yet on this instance.' }));
    fill(coupons, chart(rates('coupons'), { unit: '/s', empty: 'No coupon issued yet on this instance.' }));
  }

  await sample();
  every(self, SAMPLE_EVERY, sample);
}

const sum = (counts) => Object.values(counts).reduce((a, b) => a + b, 0);
const totalCalls = (stats) => stats.policy_calls.reduce((a, c) => a + c.calls, 0);
const ms = (v) => (v >= 10 ? `${v.toFixed(0)} ms` : v >= 1 ? `${v.toFixed(1)} ms` : `${(v * 1000).toFixed(0)} µs`);

/** The bucket bound under which `q` of the `n` calls fell: an upper bound. */
function quantile(buckets, n, q) {
  if (!n) return '–';
  const bucket = buckets.find((b) => b.count >= q * n);
  return bucket ? `≤ ${ms(bucket.le * 1000)}` : `> ${ms(buckets[buckets.length - 1].le * 1000)}`;
}

/** A line chart drawn as SVG: one polyline per series over time. */
function chart(series, { unit, empty }) {
  const drawn = series.filter((s) => s.points.some(([, v]) => v !== null && v > 0));
  const all = series.flatMap((s) => s.points);
  if (!all.length) return h('p', { class: 'muted chart-empty' }, 'Waiting for a second sample…');
  const W = 640;
  const H = 200;
  const L = 52;
  const R = 8;
  const T = 10;
  const B = 22;
  // The window grows with the samples (at least 20 s), up to two minutes.
  const t1 = Math.max(...all.map(([t]) => t));
  const first = Math.min(...all.map(([t]) => t)) - SAMPLE_EVERY;
  const t0 = Math.min(t1 - 20000, Math.max(first, t1 - (SAMPLES_KEPT - 1) * SAMPLE_EVERY));
  const max = niceCeil(Math.max(0, ...all.map(([, v]) => v || 0)));
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  const span = Math.round((t1 - t0) / 1000);
  const fmt = (v) => (unit === 'ms' ? ms(v) : `${+v.toFixed(2)}${unit}`);
  const svg = h('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${series.map((s) => s.name).join(', ')} over the last ${span} seconds` });
  for (const f of [0, 0.5, 1]) {
    svg.append(h('line', { x1: L, x2: W - R, y1: y(max * f), y2: y(max * f), class: 'grid' }),
      h('text', { x: L - 6, y: y(max * f) + 4, class: 'axis', 'text-anchor': 'end' }, fmt(max * f)));
  }
  svg.append(h('text', { x: L, y: H - 6, class: 'axis' }, span >= 120 ? '−2 min' : `−${span} s`), h('text', { x: W - R, y: H - 6, class: 'axis', 'text-anchor': 'end' }, 'now'));
  series.forEach((s, i) => {
    // A gap (no calls in an interval) breaks the line.
    let run = [];
    const lines = [];
    for (const [t, v] of s.points) {
      if (v === null) {
        if (run.length) lines.push(run);
        run = [];
      } else run.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    }
    if (run.length) lines.push(run);
    for (const points of lines) {
      if (points.length === 1) {
        const [cx, cy] = points[0].split(',');
        svg.append(h('circle', { cx, cy, r: 2.5, class: `dot s${i % 8}` }));
      } else svg.append(h('polyline', { points: points.join(' '), class: `series s${i % 8}` }));
    }
  });
  const legend = h('ul', { class: 'legend' }, series.map((s, i) => {
    const lastValue = [...s.points].reverse().find(([, v]) => v !== null);
    return h('li', {}, h('span', { class: `swatch s${i % 8}` }), s.name, lastValue ? h('span', { class: 'muted' }, ` ${fmt(lastValue[1])}`) : null);
  }));
  return h('figure', {}, svg, series.length ? legend : null, drawn.length ? null : h('figcaption', { class: 'muted' }, empty));
}

function niceCeil(v) {
  if (v <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= v) return m * step;
  return 10 * step;
}

// ------------------------------------------------------------------- start

document.getElementById('signout').addEventListener('click', () => signOut());
window.addEventListener('hashchange', () => {
  if (session.token) route({ focus: true });
});
// Keeps every "(… ago)" true while a page stays open.
setInterval(() => {
  for (const span of document.querySelectorAll('time[datetime] .ago')) {
    span.textContent = ` (${ago(new Date(span.parentElement.getAttribute('datetime')))})`;
  }
}, 5000);
document.addEventListener('keydown', (event) => {
  if (event.altKey || event.ctrlKey || event.metaKey || !session.token) return;
  if (event.target.closest('input, textarea, select, [contenteditable]')) return;
  const name = { 1: 'policies', 2: 'shadow', 3: 'replay', 4: 'live' }[event.key];
  if (name) location.hash = `#/${name}`;
});
route();
