// davit's web UI (docs/ui.md): one page, routed by the URL's hash, that
// talks only to the server's own API with the session cookie. Text from the
// server is only ever set as textContent, never parsed as HTML.
'use strict';

// Live views (docs/ui.md, "Live views") re-read their data when the server's
// change feed (GET /api/v1/watch) answers, at most this often...
const LIVE_MIN_MS = 1000;
const LIVE_BACKOFF_MAX_MS = 30000; // ...and retry a failed watch after 1 s, 2 s, ... up to this
const LOG_PAGE = 1024 * 1024; // a finished log is read this many stored bytes at a time
const LIVE_CHARS_MAX = 4 * 1024 * 1024; // a followed log keeps about this much text on the page
const RUN_STATES = ['queued', 'assigned', 'preparing', 'running', 'finished', 'failed',
  'canceled', 'timed_out', 'lost'];
const ENDED = new Set(['finished', 'failed', 'canceled', 'timed_out', 'lost']);

let session = null; // {name, role, csrf}
let aborts = []; // the current page's streams and live views, stopped when it changes
let pageGen = 0; // bumped on every route change: late answers of a left page are dropped

// ---- small DOM helpers --------------------------------------------------

function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

function clear(e, ...kids) {
  e.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
}

function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined || isNaN(ms)) return '';
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function badge(state) {
  return h('span', {class: `badge s-${state}`, text: state.replace('_', ' ')});
}

// A table; on a narrow screen each row becomes a card whose cells carry
// their column's name (data-label, shown by app.css).
function table(caption, heads, rows, empty) {
  if (!rows.length) return h('p', {class: 'empty', text: empty});
  for (const row of rows) {
    [...row.children].forEach((c, i) => {
      if (heads[i]) c.dataset.label = heads[i];
    });
  }
  return h('div', {class: 'scroll'},
    h('table', {},
      h('caption', {class: 'sr', text: caption}),
      h('thead', {}, h('tr', {}, heads.map((t) => h('th', {scope: 'col', text: t})))),
      h('tbody', {}, rows)));
}

// A filter's label and control, kept on one line.
function field(id, label, control) {
  return h('span', {class: 'field'}, h('label', {for: id, text: label}), control);
}

function message(el, text, kind) {
  clear(el, text ? h('p', {class: `msg ${kind || 'error'}`, role: kind === 'ok' ? 'status' : 'alert', text}) : null);
}

// ---- the API -------------------------------------------------------------

class ApiError extends Error {
  constructor(status, text) {
    super(text);
    this.status = status;
  }
}

async function api(method, path, body, signal) {
  const opts = {method, headers: {}, credentials: 'same-origin', cache: 'no-store', signal};
  if (method !== 'GET' && method !== 'HEAD' && session) opts.headers['X-CSRF-Token'] = session.csrf;
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(`/api/v1${path}`, opts);
  let data = null;
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
  }
  if (res.status === 401 && path !== '/session') {
    session = null;
    location.hash = '#/signin';
  }
  if (!res.ok) throw new ApiError(res.status, (data && data.error) || `HTTP ${res.status}`);
  return data;
}

// What a role may do; the API enforces the same (the UI only hides).
function can(what) {
  const role = session ? session.role : '';
  if (role === 'admin') return true;
  if (role === 'operator') return ['cancel', 'drain', 'cycle', 'submit'].includes(what);
  return false;
}

// ---- confirmations and one-time tokens -------------------------------------

// Asks before an action; extra is an element shown in the dialog (a CSR box).
function confirmAction(title, text, yes, extra) {
  const dlg = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-yes').textContent = yes;
  clear(document.getElementById('confirm-extra'), extra || null);
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), {once: true});
    dlg.returnValue = '';
    dlg.showModal();
    if (extra && extra.querySelector('textarea')) extra.querySelector('textarea').focus();
  });
}

// The token shown once, with a button that copies it.
function tokenPanel(token, what) {
  const status = h('span', {class: 'muted', role: 'status', 'aria-live': 'polite'});
  const box = h('textarea', {id: 'new-token', readonly: true, rows: 3, 'aria-label': `${what} token`,
    spellcheck: 'false', text: token});
  const copy = h('button', {type: 'button', id: 'copy-token', onclick: async () => {
    try {
      await navigator.clipboard.writeText(token);
    } catch (e) {
      // No clipboard API (plain HTTP on another host): copy the selection.
      box.select();
      if (!document.execCommand('copy')) {
        status.textContent = 'Select the token and copy it by hand.';
        return;
      }
    }
    status.textContent = 'Copied to the clipboard.';
  }}, 'Copy token');
  const panel = h('section', {class: 'token card', 'aria-label': `${what} token`},
    h('h3', {text: `${what} token: shown once`}),
    h('p', {class: 'muted', text: 'Give it to the pool\'s launchers as DAVIT_TOKEN. The server keeps only its hash: it cannot be shown again.'}),
    box, h('div', {class: 'buttons'}, copy,
      h('button', {type: 'button', class: 'quiet', onclick: () => panel.remove()}, 'Done'), status));
  return panel;
}

// ---- pages -----------------------------------------------------------------

const main = () => document.getElementById('main');

// A page that was left while it waited for the API: its rendering stops.
class Stale extends Error {}

// Shows a page's content, unless the route changed since the page (gen) began.
function show(gen, ...kids) {
  if (gen !== pageGen) throw new Stale('left');
  clear(main(), ...kids);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The watches in flight: a hidden tab aborts them (visibilitychange, in start()).
const watching = new Set();

// Resolves when the tab is visible, at once if it is.
function whenVisible() {
  if (!document.hidden) return Promise.resolve();
  return new Promise((resolve) => {
    const seen = () => {
      if (document.hidden) return;
      document.removeEventListener('visibilitychange', seen);
      resolve();
    };
    document.addEventListener('visibilitychange', seen);
  });
}

// Keeps the page (gen) live: watches the server's change feed for pool (null:
// every pool) and calls fn when it answers, then watches again. The watch
// answers when something the views show changed, or after its wait (about
// 25 s) with nothing new: fn runs then too, for what only time changes (a
// worker's lease lapsing, "last seen"). A version other than the last one,
// smaller included (the server restarted), is a change. Stops when the page
// changes; sleeps while the tab is hidden, and looks again when it shows.
function watchLive(gen, pool, fn) {
  if (gen !== pageGen) return;
  let current = null;
  let stopped = false;
  aborts.push({abort: () => {
    stopped = true;
    current?.abort();
  }});
  (async () => {
    let since = null; // the first answer says the version now
    let owed = false; // a refresh failed: the next answer runs fn whatever it says
    let backoff = 0;
    let last = Date.now(); // the page has just loaded its data
    while (!stopped && gen === pageGen) {
      await whenVisible();
      if (stopped || gen !== pageGen) return;
      const q = new URLSearchParams();
      if (pool) q.set('pool', pool);
      if (since !== null) q.set('since', since);
      current = new AbortController();
      watching.add(current);
      try {
        const w = await api('GET', `/watch?${q}`, undefined, current.signal);
        const refresh = since !== null || owed;
        since = w.version;
        if (stopped || gen !== pageGen) return;
        if (refresh) {
          await sleep(Math.max(0, last + LIVE_MIN_MS - Date.now()));
          last = Date.now();
          if (stopped || gen !== pageGen) return;
          owed = true;
          await fn();
        }
        owed = false;
        backoff = 0;
      } catch (e) {
        if (stopped || gen !== pageGen || e.status === 401) return;
        if (e.name === 'AbortError') continue; // the tab was hidden
        backoff = Math.min(backoff ? backoff * 2 : 1000, LIVE_BACKOFF_MAX_MS);
        await sleep(backoff);
      } finally {
        watching.delete(current);
      }
    }
  })();
}

// Replaces el's children only when the data changed, so that a refresh
// does not move the keyboard focus or the scroll position for nothing.
function update(el, data, render) {
  const key = JSON.stringify(data);
  if (el.dataset.key === key) return;
  el.dataset.key = key;
  const focused = document.activeElement && el.contains(document.activeElement) ?
    document.activeElement.id : null;
  clear(el, render(data));
  if (focused) document.getElementById(focused)?.focus();
}

function pageSignin() {
  const msg = h('div', {id: 'signin-msg'});
  const input = h('input', {id: 'token', type: 'password', name: 'token', autocomplete: 'current-password',
    required: true, spellcheck: 'false'});
  const form = h('form', {class: 'card narrow', onsubmit: async (ev) => {
    ev.preventDefault();
    message(msg, '');
    try {
      session = await api('POST', '/session', {token: input.value.trim()});
      input.value = '';
      showSession();
      location.hash = '#/pools';
    } catch (e) {
      message(msg, e.status === 401 ? 'That token is not valid. Check it and try again.' : e.message);
      input.select();
    }
  }},
  h('h1', {text: 'Sign in'}),
  h('p', {class: 'muted', text: 'Use an API token: the admin token the server printed on its first start, or one made with davit token create.'}),
  h('label', {for: 'token', text: 'API token'}), input, msg,
  h('div', {class: 'buttons'}, h('button', {type: 'submit', id: 'signin'}, 'Sign in')));
  clear(main(), form);
  input.focus();
}

function workerCounts(workers) {
  const by = {};
  for (const w of workers) {
    const c = by[w.pool] || (by[w.pool] = {idle: 0, busy: 0, draining: 0, other: 0});
    if (w.state in c) c[w.state]++;
    else c.other++;
  }
  return by;
}

async function poolAction(kind, name, after) {
  const out = document.getElementById('action-msg');
  try {
    if (kind === 'cycle') {
      if (!await confirmAction(`Cycle pool ${name}?`, 'Every launcher of the pool finishes its runs, then exits so that its supervisor starts a fresh one.', 'Cycle')) return;
      const r = await api('POST', `/pools/${encodeURIComponent(name)}/cycle`, {});
      message(out, `Cycling ${r.workers} ${r.workers === 1 ? 'worker' : 'workers'} of ${name}: each exits once its runs are done.`, 'ok');
    } else if (kind === 'reset') {
      const csr = h('textarea', {id: 'reset-csr', rows: 6, 'aria-label': 'New CSR (PEM)', spellcheck: 'false',
        placeholder: '-----BEGIN CERTIFICATE REQUEST-----'});
      const extra = h('div', {}, h('label', {for: 'reset-csr', text: 'New CSR (PEM)'}), csr);
      if (!await confirmAction(`Reset pool ${name}?`, 'The pool gets a new key and token; the old token stops at once and its launchers exit.', 'Reset', extra)) return;
      const r = await api('POST', `/pools/${encodeURIComponent(name)}/reset`, {csr: csr.value});
      clear(out, tokenPanel(r.token, `Pool ${name}: new`));
    } else if (kind === 'delete') {
      if (!await confirmAction(`Delete pool ${name}?`, 'Its runs, logs and launchers are deleted. This cannot be undone.', 'Delete')) return;
      await api('DELETE', `/pools/${encodeURIComponent(name)}`);
      message(out, `Pool ${name} deleted.`, 'ok');
    }
    if (after) await after();
  } catch (e) {
    message(out, `${kind}: ${e.message}`);
  }
}

function poolButtons(name, after) {
  return [
    can('cycle') && h('button', {type: 'button', class: 'small', 'data-action': 'cycle', 'aria-label': `Cycle pool ${name}`,
      onclick: () => poolAction('cycle', name, after)}, 'Cycle'),
    can('pools') && h('button', {type: 'button', class: 'small', 'data-action': 'reset', 'aria-label': `Reset pool ${name}`,
      onclick: () => poolAction('reset', name, after)}, 'Reset'),
    can('pools') && h('button', {type: 'button', class: 'small danger', 'data-action': 'delete', 'aria-label': `Delete pool ${name}`,
      onclick: () => poolAction('delete', name, after)}, 'Delete'),
  ];
}

function createPoolForm(after) {
  const msg = h('div');
  const name = h('input', {id: 'pool-name', name: 'name', required: true, pattern: '[A-Za-z0-9._-]+',
    autocomplete: 'off', spellcheck: 'false'});
  const csr = h('textarea', {id: 'pool-csr', name: 'csr', rows: 7, required: true, spellcheck: 'false',
    placeholder: '-----BEGIN CERTIFICATE REQUEST-----'});
  const file = h('input', {id: 'pool-csr-file', type: 'file', accept: '.csr,.pem,.txt', onchange: async () => {
    if (file.files[0]) csr.value = await file.files[0].text();
  }});
  const out = document.getElementById('create-result');
  const form = h('form', {class: 'card', id: 'create-pool', onsubmit: async (ev) => {
    ev.preventDefault();
    message(msg, '');
    try {
      const r = await api('POST', '/pools', {name: name.value.trim(), csr: csr.value});
      form.reset();
      form.closest('details').open = false;
      clear(out, tokenPanel(r.token, `Pool ${r.pool.name}`));
      if (after) await after();
      document.getElementById('copy-token').focus();
    } catch (e) {
      message(msg, e.message);
    }
  }},
  h('h2', {text: 'Create a pool'}),
  h('p', {class: 'muted'}, 'Make a key and a CSR with ',
    h('code', {text: 'openssl req -new -newkey rsa:4096 -nodes -keyout davit.key -out davit.csr'}),
    ', then paste or upload the CSR. The key stays with you.'),
  h('label', {for: 'pool-name', text: 'Name'}), name,
  h('label', {for: 'pool-csr', text: 'CSR (PEM)'}), csr,
  h('label', {for: 'pool-csr-file', text: 'or upload the CSR file'}), file,
  msg, h('div', {class: 'buttons'}, h('button', {type: 'submit', id: 'create-submit'}, 'Create pool')));
  return form;
}

async function pagePools(gen) {
  const list = h('div', {id: 'pools'});
  const load = async () => {
    const [p, w] = await Promise.all([api('GET', '/pools'), api('GET', '/workers')]);
    const counts = workerCounts(w.workers);
    update(list, {p, counts}, () => table('Pools',
      ['Pool', 'Idle', 'Busy', 'Drained', 'Pending', 'Active', 'Created', ''],
      p.pools.map((pool) => {
        const c = counts[pool.name] || {idle: 0, busy: 0, draining: 0};
        return h('tr', {'data-pool': pool.name},
          h('th', {scope: 'row'}, h('a', {href: `#/pools/${encodeURIComponent(pool.name)}`, text: pool.name})),
          h('td', {class: 'num', 'data-col': 'idle', text: c.idle}),
          h('td', {class: 'num', 'data-col': 'busy', text: c.busy}),
          h('td', {class: 'num', 'data-col': 'drained', text: c.draining}),
          h('td', {class: 'num', 'data-col': 'pending', text: pool.pending}),
          h('td', {class: 'num', 'data-col': 'active', text: pool.active}),
          h('td', {class: 'nowrap', text: fmtTime(pool.created_at)}),
          h('td', {class: 'actions'}, poolButtons(pool.name, load)));
      }), 'No pools yet.'));
  };
  show(gen, h('div', {class: 'head'}, h('h1', {text: 'Pools'})),
    h('div', {id: 'action-msg'}), h('div', {id: 'create-result'}), list);
  if (can('pools')) main().append(h('details', {class: 'create'},
    h('summary', {text: 'Create a pool'}), createPoolForm(load)));
  await load();
  watchLive(gen, null, load);
}

function workerRow(w, reload) {
  const meta = Object.entries(w.metadata || {}).map(([k, v]) => h('span', {class: 'tag', text: `${k}=${v}`}));
  const runs = (w.runs || []).map((id) => h('a', {href: `#/runs/${id}`, text: `#${id}`}));
  const draining = w.state === 'draining';
  const act = can('drain') && w.state !== 'offline' && w.state !== 'exiting' ?
    h('button', {type: 'button', class: 'small', 'data-action': draining ? 'undrain' : 'drain',
      'aria-label': `${draining ? 'Undrain' : 'Drain'} worker ${w.id}`, onclick: async () => {
        try {
          await api('POST', `/workers/${w.id}/${draining ? 'undrain' : 'drain'}`, {});
          await reload();
        } catch (e) {
          message(document.getElementById('action-msg'), e.message);
        }
      }}, draining ? 'Undrain' : 'Drain') : null;
  return h('tr', {'data-worker': w.id, 'data-state': w.state},
    h('td', {}, badge(w.state === 'draining' ? 'drained' : w.state)),
    h('td', {class: 'num', text: w.id}),
    h('td', {text: w.hostname || ''}),
    h('td', {text: w.version || ''}),
    h('td', {text: w.arch || ''}),
    h('td', {class: 'tags'}, meta),
    h('td', {class: 'nowrap', text: fmtTime(w.last_seen_at)}),
    h('td', {class: 'runs-col'}, runs.length ? runs : h('span', {class: 'muted', text: '–'})),
    h('td', {class: 'actions'}, act));
}

function runRow(run, withPool) {
  return h('tr', {'data-run': run.id, 'data-state': run.state},
    h('th', {scope: 'row'}, h('a', {href: `#/runs/${run.id}`, text: `#${run.id}`})),
    withPool ? h('td', {}, h('a', {href: `#/pools/${encodeURIComponent(run.pool)}`, text: run.pool})) : null,
    h('td', {}, badge(run.state)),
    h('td', {text: run.phase || ''}),
    h('td', {class: 'nowrap', text: fmtTime(run.created_at)}),
    h('td', {class: 'nowrap', text: fmtTime(run.ended_at)}),
    h('td', {class: 'num', text: run.exit_code === null || run.exit_code === undefined ? '' : run.exit_code}));
}

const RUN_HEADS = ['Run', 'State', 'Phase', 'Created', 'Ended', 'Exit'];

// A paged list of runs: filters in q ({pool, state}), newest first.
function runsList(q, withPool, hashFor) {
  const el = h('div', {id: 'runs'});
  const load = async () => {
    const p = new URLSearchParams({limit: '50'});
    if (q.pool) p.set('pool', q.pool);
    if (q.state) p.set('state', q.state);
    if (q.before) p.set('before', q.before);
    const r = await api('GET', `/runs?${p}`);
    update(el, r, () => {
      const heads = withPool ? ['Run', 'Pool', ...RUN_HEADS.slice(1)] : RUN_HEADS;
      const nav = h('nav', {class: 'pager', 'aria-label': 'Pages'},
        q.before ? h('a', {href: hashFor({...q, before: ''}), class: 'button quiet', text: 'Newest'}) : null,
        r.next ? h('a', {href: hashFor({...q, before: r.next}), class: 'button quiet', id: 'older', text: 'Older runs'}) : null);
      return [table('Runs', heads, r.runs.map((run) => runRow(run, withPool)), 'No runs.'), nav];
    });
  };
  return {el, load};
}

function runsHash(q) {
  const p = new URLSearchParams();
  for (const k of ['pool', 'state', 'before']) if (q[k]) p.set(k, q[k]);
  const s = p.toString();
  return `#/runs${s ? `?${s}` : ''}`;
}

async function pageRuns(q, gen) {
  const pools = await api('GET', '/pools');
  const poolSel = h('select', {id: 'filter-pool'},
    h('option', {value: '', text: 'all pools'}),
    pools.pools.map((p) => h('option', {value: p.name, selected: p.name === q.pool, text: p.name})));
  const stateSel = h('select', {id: 'filter-state'},
    h('option', {value: '', text: 'all states'}),
    RUN_STATES.map((s) => h('option', {value: s, selected: s === q.state, text: s.replace('_', ' ')})));
  const apply = () => {
    location.hash = runsHash({pool: poolSel.value, state: stateSel.value});
  };
  poolSel.addEventListener('change', apply);
  stateSel.addEventListener('change', apply);
  const list = runsList(q, true, runsHash);
  show(gen, h('div', {class: 'head'}, h('h1', {text: 'Runs'})),
    h('form', {class: 'filters', 'aria-label': 'Filter runs', onsubmit: (e) => e.preventDefault()},
      field('filter-pool', 'Pool', poolSel), field('filter-state', 'State', stateSel)),
    list.el);
  await list.load();
  if (!q.before) watchLive(gen, q.pool || null, list.load);
}

async function pagePool(name, tab, q, gen) {
  const enc = encodeURIComponent(name);
  const stats = h('div', {class: 'stats', id: 'pool-stats'});
  // The views are links (each has its address), marked like the main navigation.
  const body = h('div', {id: 'tab-body'});
  const tabs = h('nav', {class: 'tabs', 'aria-label': 'Pool views'},
    ['workers', 'queue', 'runs'].map((t) => h('a', {href: `#/pools/${enc}/${t}`, id: `tab-${t}`,
      'aria-current': t === tab ? 'page' : null, class: t === tab ? 'on' : '', text: t[0].toUpperCase() + t.slice(1)})));
  const loadStats = async () => {
    const p = await api('GET', `/pools/${enc}`);
    const pool = p.pool || p;
    update(stats, pool, () => [
      h('span', {}, h('b', {text: pool.workers}), ' workers'),
      h('span', {}, h('b', {text: pool.pending}), ' pending'),
      h('span', {}, h('b', {text: pool.active}), ' active'),
      h('span', {class: 'muted', text: `key ${pool.keytype || ''}, created ${fmtTime(pool.created_at)}`})]);
  };
  let load;
  let filters = null;
  if (tab === 'workers') {
    // Filters by status and by metadata (key=value, or part of it), in the page.
    const state = h('select', {id: 'worker-state'},
      ['', 'idle', 'busy', 'drained', 'exiting', 'offline'].map((v) => h('option', {value: v, text: v || 'all'})));
    const tag = h('input', {id: 'worker-tag', type: 'search', placeholder: 'key=value', autocomplete: 'off', spellcheck: 'false'});
    filters = h('form', {class: 'filters', 'aria-label': 'Filter workers', onsubmit: (e) => e.preventDefault()},
      field('worker-state', 'Status', state), field('worker-tag', 'Metadata', tag));
    let last = null;
    const render = () => {
      if (!last) return;
      const want = state.value === 'drained' ? 'draining' : state.value;
      const t = tag.value.trim().toLowerCase();
      const shown = last.workers.filter((x) => (!want || x.state === want) && (!t ||
        Object.entries(x.metadata || {}).some(([k, v]) => `${k}=${v}`.toLowerCase().includes(t))));
      update(body, {shown, f: [want, t]}, () => table('Workers',
        ['Status', 'ID', 'Host', 'Version', 'Arch', 'Metadata', 'Last seen', 'Runs', ''],
        shown.map((x) => workerRow(x, load)),
        last.workers.length ? 'No worker matches these filters.' : 'No workers: start a launcher with this pool\'s token.'));
    };
    state.addEventListener('change', render);
    tag.addEventListener('input', render);
    load = async () => {
      last = await api('GET', `/workers?pool=${enc}`);
      render();
    };
  } else if (tab === 'queue') {
    load = async () => {
      const get = (s) => api('GET', `/runs?pool=${enc}&state=${s}&limit=1000`).then((r) => r.runs);
      const [running, preparing, assigned, queued] = await Promise.all(
        ['running', 'preparing', 'assigned', 'queued'].map(get));
      const active = [...running, ...preparing, ...assigned].sort((a, b) => a.id - b.id);
      const pending = queued.slice().reverse(); // oldest first: the next to go
      const link = (r) => h('th', {scope: 'row'}, h('a', {href: `#/runs/${r.id}`, text: `#${r.id}`}));
      update(body, {active, pending}, () => [
        h('h2', {text: `In progress (${active.length})`}),
        table('Runs in progress', ['Run', 'State', 'Phase', 'Worker', 'Started'], active.map((r) =>
          h('tr', {'data-run': r.id, 'data-state': r.state}, link(r), h('td', {}, badge(r.state)),
            h('td', {text: r.phase || '–'}), h('td', {class: 'num', text: r.worker || '–'}),
            h('td', {class: 'nowrap', text: fmtTime(r.started_at || r.assigned_at)}))), 'Nothing running.'),
        h('h2', {text: `Pending (${pending.length})`}),
        table('Pending runs', ['Position', 'Run', 'State', 'Queued at', 'Attempts'], pending.map((r, i) =>
          h('tr', {'data-run': r.id, 'data-state': r.state}, h('td', {class: 'num', text: i + 1}), link(r),
            h('td', {}, badge(r.state)), h('td', {class: 'nowrap', text: fmtTime(r.created_at)}),
            h('td', {class: 'num', text: r.attempts || 0}))), 'Nothing pending.')]);
    };
  } else {
    const list = runsList({...q, pool: name}, false, (x) => `#/pools/${enc}/runs${x.before ? `?before=${x.before}` : ''}`);
    clear(body, list.el);
    load = list.load;
  }
  const reloadAll = async () => {
    await Promise.all([loadStats(), load()]);
  };
  show(gen,
    h('div', {class: 'head'},
      h('h1', {}, h('a', {href: '#/pools', class: 'crumb', text: 'Pools'}), ' / ', name),
      h('div', {class: 'actions'}, poolButtons(name, reloadAll))),
    h('div', {id: 'action-msg'}), stats, tabs, filters, body);
  await reloadAll();
  if (!(tab === 'runs' && q.before)) watchLive(gen, name, reloadAll);
}

// ---- a run -----------------------------------------------------------------

// The log, split by phase into collapsible sections, fed line by line.
// Plain lines are gathered into one text node per chunk fed (a page of a
// million lines is a few nodes, not a million).
class LogView {
  constructor(el, phasesEl) {
    this.el = el;
    this.phasesEl = phasesEl;
    this.phases = new Map(); // name -> {outcome, exit, duration_ms}
    this.section = null;
    this.partial = '';
    this.pending = ''; // plain lines not yet on the page
    this.lines = 0;
    this.chars = 0; // text on the page: a followed log keeps it under LIVE_CHARS_MAX
    this.trimmed = false;
  }

  open(name) {
    this.put();
    // A followed log shows the phase running now; the ones before fold away.
    if (this.section && this.live) this.section.details.open = false;
    const pre = h('pre', {class: 'log', tabindex: '0'});
    const details = h('details', {open: true, 'data-phase': name},
      h('summary', {}, h('span', {class: 'phase-name', text: name}), h('span', {class: 'phase-outcome'})), pre);
    this.el.append(details);
    this.section = {name, details, pre};
  }

  // Puts the gathered plain lines on the page.
  put() {
    if (!this.pending || !this.section) return;
    this.section.pre.append(this.pending);
    this.chars += this.pending.length;
    this.pending = '';
  }

  line(text) {
    const start = /^=== phase (\S+)$/.exec(text);
    const end = /^=== phase (\S+) ended: (.*)$/.exec(text);
    if (start) {
      this.open(start[1]);
      if (!this.phases.has(start[1])) this.phases.set(start[1], {outcome: 'running'});
      this.renderPhases();
      return;
    }
    if (!this.section) this.open(this.lines === 0 && this.continued ? '(continued)' : 'setup');
    this.lines++;
    const cls = end ? 'mark' : /^(=== run:|davit: )/.test(text) ? 'note' : /^\$ /.test(text) ? 'cmd' : null;
    if (!cls) {
      this.pending += `${text}\n`;
      return;
    }
    this.put();
    this.section.pre.append(h('span', {class: cls, text: `${text}\n`}));
    this.chars += text.length + 1;
    if (end) {
      const kv = Object.fromEntries(end[2].split(' ').map((p) => p.split('=')));
      this.phases.set(end[1], {outcome: kv.outcome, exit: kv.exit, duration_ms: Number(kv.duration_ms)});
      if (this.section.name === end[1]) {
        this.section.details.querySelector('.phase-outcome').replaceChildren(badge(kv.outcome || 'ended'));
        this.section.details.dataset.outcome = kv.outcome || '';
      }
      this.renderPhases();
    }
  }

  // Keeps a followed log's page bounded: the oldest text leaves the page.
  trim() {
    for (const pre of this.el.querySelectorAll('pre.log')) {
      while (this.chars > LIVE_CHARS_MAX * 0.8 && pre.firstChild && pre !== this.section.pre) {
        this.chars -= pre.firstChild.textContent.length;
        pre.firstChild.remove();
      }
      if (!pre.firstChild) pre.parentElement.remove();
    }
    if (this.chars > LIVE_CHARS_MAX * 0.8) {
      // All in the current phase: keep its last part.
      const pre = this.section.pre;
      const keep = pre.textContent.slice(-Math.floor(LIVE_CHARS_MAX * 0.5));
      pre.replaceChildren(keep);
      this.chars = keep.length;
    }
    if (!this.trimmed) {
      this.trimmed = true;
      this.el.prepend(h('p', {class: 'muted', id: 'log-trimmed', text: 'Earlier lines were taken off the page to keep it fast; once the run has ended its whole log can be read here page by page, or downloaded.'}));
    }
  }

  feed(text) {
    // A followed log stays at its end while the reader has not scrolled up.
    const pre = this.section && this.section.pre;
    const stick = this.live && (!pre || pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40);
    const all = this.partial + text;
    const parts = all.split('\n');
    this.partial = parts.pop();
    for (const p of parts) this.line(p);
    this.put();
    if (this.live && this.chars > LIVE_CHARS_MAX) this.trim();
    if (stick && this.section) this.section.pre.scrollTop = this.section.pre.scrollHeight;
  }

  flush() {
    if (this.partial) this.line(this.partial);
    this.partial = '';
    this.put();
  }

  // A finished page: when a phase failed, the phases that went well fold
  // away so that the failure is what shows.
  settle() {
    const all = [...this.el.querySelectorAll('details')];
    const fine = (d) => ['succeeded', 'skipped'].includes(d.dataset.outcome);
    if (all.some((d) => d.dataset.outcome && !fine(d))) all.forEach((d) => { d.open = !fine(d); });
  }

  // The phases seen so far, at once; a followed log then asks the server
  // for their times (format=phases), once per phase marker, not per line.
  renderPhases() {
    if (!this.phasesEl) return; // a finished log's phases come from the server
    phaseTable(this.phasesEl, [...this.phases].map(([name, p]) => ({name, outcome: p.outcome,
      exit_code: p.exit === undefined ? null : Number(p.exit), duration_ms: p.duration_ms})));
    if (this.live) this.fetchPhases();
  }

  fetchPhases() {
    clearTimeout(this.phasesTimer);
    this.phasesTimer = setTimeout(async () => {
      try {
        const sum = await api('GET', `/runs/${this.runId}/logs?format=phases`);
        if (this.gen === pageGen && sum.phases.length) phaseTable(this.phasesEl, sum.phases);
      } catch (e) {
        // The table keeps what the log showed.
      }
    }, 300);
  }
}

// The phases' table; jump(phase), when given, shows the log from that phase.
function phaseTable(el, phases, jump) {
  const rows = phases.map((p) => h('tr', {'data-phase': p.name},
    h('th', {scope: 'row'}, jump ? h('button', {type: 'button', class: 'link', 'aria-label': `Show the log of phase ${p.name}`,
      onclick: () => jump(p)}, p.name) : p.name),
    h('td', {}, badge(p.outcome || 'running')),
    h('td', {class: 'num', text: p.exit_code === null || p.exit_code === undefined || p.exit_code < 0 ? '–' : p.exit_code}),
    h('td', {class: 'num', text: fmtDuration(p.duration_ms)}),
    h('td', {class: 'nowrap', text: fmtTime(p.started_at) || '–'})));
  clear(el, table('Phases', ['Phase', 'Outcome', 'Exit code', 'Duration', 'Started'], rows, 'No phase has started yet.'));
}

function timeline(run) {
  const steps = [['queued', run.created_at], ['assigned', run.assigned_at], ['started', run.started_at],
    [ENDED.has(run.state) ? run.state : 'ended', run.ended_at]];
  return h('ol', {class: 'timeline', 'aria-label': 'State timeline'},
    steps.map(([label, at]) => h('li', {class: at ? 'done' : 'todo'},
      h('span', {class: 'dot', 'aria-hidden': 'true'}),
      h('span', {class: 'label', text: label.replace('_', ' ')}),
      h('time', {datetime: at || null, text: at ? fmtTime(at) : '–'}))));
}

async function followLog(id, view, gen) {
  const ctl = new AbortController();
  aborts.push(ctl);
  const res = await fetch(`/api/v1/runs/${id}/logs?follow=1`, {credentials: 'same-origin', signal: ctl.signal});
  if (!res.ok) throw new ApiError(res.status, `log: HTTP ${res.status}`);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const {value, done} = await reader.read();
    if (done || gen !== pageGen) break;
    view.feed(value);
  }
  view.flush();
}

// A finished log, LOG_PAGE stored bytes at a time, so that a 100 MB log
// never lands in the tab at once. Page starts are record boundaries the
// server gives (X-Davit-Next-Offset), remembered to go back.
// A finished log, LOG_PAGE stored bytes at a time, so that a 100 MB log
// never lands in the tab at once. Pages start where the server said the
// last one ended (X-Davit-Next-Offset) or where a phase starts (its phases
// summary, format=phases); the pages seen are a stack to go back through.
async function pagedLog(id, logEl, phasesEl, nav) {
  let cur = 0;
  const back = [];
  const show = async (offset) => {
    const res = await fetch(`/api/v1/runs/${id}/logs?offset=${offset}&limit=${LOG_PAGE}`,
      {credentials: 'same-origin', cache: 'no-store'});
    if (!res.ok) throw new ApiError(res.status, `log: HTTP ${res.status}`);
    const next = Number(res.headers.get('X-Davit-Next-Offset'));
    const total = Number(res.headers.get('X-Davit-Log-Bytes'));
    const text = await res.text();
    cur = offset;
    clear(logEl);
    const view = new LogView(logEl, null);
    view.continued = offset > 0;
    view.feed(text);
    view.flush();
    view.settle();
    clear(nav, total > LOG_PAGE ? [
      h('button', {type: 'button', class: 'quiet', id: 'log-prev', disabled: !back.length,
        onclick: () => show(back.pop())}, 'Previous page'),
      h('span', {class: 'muted', text: `bytes ${fmtBytes(offset)} to ${fmtBytes(next)} of ${fmtBytes(total)}`}),
      h('button', {type: 'button', class: 'quiet', id: 'log-next', disabled: next >= total,
        onclick: () => { back.push(cur); show(next); }}, 'Next page')] : []);
    return total;
  };
  const [sum] = await Promise.all([api('GET', `/runs/${id}/logs?format=phases`), show(0)]);
  phaseTable(phasesEl, sum.phases, sum.log_bytes > LOG_PAGE ? (p) => {
    back.push(cur);
    show(p.offset).then(() => logEl.querySelector('pre')?.focus());
  } : null);
}

async function pageRun(id, gen) {
  const headEl = h('div', {class: 'head'});
  const metaEl = h('div', {id: 'run-meta'});
  const phasesEl = h('div', {id: 'phases'});
  const logEl = h('div', {id: 'log', 'aria-live': 'off'});
  const nav = h('nav', {class: 'pager', 'aria-label': 'Log pages'});
  const msg = h('div', {id: 'action-msg'});
  let run = (await api('GET', `/runs/${id}`));
  const renderHead = (r) => {
    const cancel = can('cancel') && !ENDED.has(r.state) ?
      h('button', {type: 'button', class: 'danger', id: 'cancel', 'data-action': 'cancel', disabled: r.cancel_requested,
        onclick: async () => {
          if (!await confirmAction(`Cancel run #${r.id}?`, 'Its container is stopped and the run ends canceled.', 'Cancel run')) return;
          try {
            await api('POST', `/runs/${r.id}/cancel`, {});
            await refresh();
          } catch (e) {
            message(msg, e.message);
          }
        }}, r.cancel_requested ? 'Canceling…' : 'Cancel run') : null;
    update(headEl, r, () => [
      h('h1', {}, h('a', {href: '#/runs', class: 'crumb', text: 'Runs'}), ` / #${r.id} `, h('span', {id: 'run-state'}, badge(r.state))),
      h('div', {class: 'actions'}, cancel)]);
    const spec = r.spec || {};
    const fact = (label, value, wide) => h('div', {class: wide ? 'wide' : null}, h('dt', {text: label}), h('dd', {}, value));
    update(metaEl, r, () => [timeline(r), h('dl', {class: 'facts'},
      fact('Pool', h('a', {href: `#/pools/${encodeURIComponent(r.pool)}`, text: r.pool})),
      fact('Image', spec.image || '–'),
      fact('Phase', r.phase || '–'),
      fact('Worker', r.worker ? String(r.worker) : '–'),
      fact('Exit code', r.exit_code === null || r.exit_code === undefined ? '–' : String(r.exit_code)),
      fact('Attempts', String(r.attempts || 0)),
      fact('Log', r.log_deleted_at ? `deleted by retention at ${fmtTime(r.log_deleted_at)}` :
        h('span', {class: 'nowrap'}, `${fmtBytes(r.log_bytes || 0)} `,
          h('a', {href: `/api/v1/runs/${r.id}/logs`, download: `run-${r.id}.log`, text: 'download'}))),
      r.reason ? fact('Reason', r.reason, true) : null)]);
  };
  const refresh = async () => {
    run = await api('GET', `/runs/${id}`);
    renderHead(run);
  };
  const logHead = h('h2', {text: 'Log '});
  show(gen, headEl, msg, metaEl, h('h2', {text: 'Phases'}), phasesEl, logHead, nav, logEl);
  renderHead(run);
  new LogView(logEl, phasesEl).renderPhases();
  if (ENDED.has(run.state)) {
    await pagedLog(id, logEl, phasesEl, nav);
    return;
  }
  watchLive(gen, run.pool, refresh);
  const view = new LogView(logEl, phasesEl);
  Object.assign(view, {live: true, runId: id, gen});
  view.renderPhases();
  const live = h('span', {class: 'live', id: 'live', text: 'live'});
  logHead.append(live);
  followLog(id, view, gen).then(async () => {
    if (gen !== pageGen) return;
    live.remove();
    view.fetchPhases();
    await refresh();
  }).catch((e) => {
    if (gen === pageGen && e.name !== 'AbortError') message(msg, e.message);
  });
}

// ---- routing ---------------------------------------------------------------

function showSession() {
  document.getElementById('nav').hidden = !session;
  document.getElementById('who').hidden = !session;
  document.getElementById('who-name').textContent = session ? `${session.name} (${session.role})` : '';
  document.body.dataset.role = session ? session.role : '';
}

async function route() {
  const gen = ++pageGen;
  aborts.forEach((a) => a.abort());
  aborts = [];
  const hash = location.hash || '#/pools';
  const [path, query] = hash.slice(1).split('?');
  const q = Object.fromEntries(new URLSearchParams(query || ''));
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === parts[0]) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!session || parts[0] === 'signin') {
    if (session) {
      location.hash = '#/pools';
      return;
    }
    document.title = 'Sign in · davit';
    pageSignin();
    return;
  }
  try {
    if (parts[0] === 'runs' && parts[1]) {
      document.title = `Run #${parts[1]} · davit`;
      await pageRun(parts[1], gen);
    } else if (parts[0] === 'runs') {
      document.title = 'Runs · davit';
      await pageRuns(q, gen);
    } else if (parts[0] === 'pools' && parts[1]) {
      document.title = `Pool ${parts[1]} · davit`;
      await pagePool(parts[1], ['queue', 'runs'].includes(parts[2]) ? parts[2] : 'workers', q, gen);
    } else {
      document.title = 'Pools · davit';
      await pagePools(gen);
    }
  } catch (e) {
    if (!(e instanceof Stale) && e.status !== 401 && gen === pageGen) {
      clear(main(), h('p', {class: 'msg error', role: 'alert', text: e.message}));
    }
  }
}

async function start() {
  document.getElementById('signout').addEventListener('click', async () => {
    try {
      await api('DELETE', '/session');
    } catch (e) {
      // Signed out either way.
    }
    session = null;
    showSession();
    location.hash = '#/signin';
  });
  try {
    session = await api('GET', '/session');
  } catch (e) {
    session = null;
  }
  showSession();
  window.addEventListener('hashchange', route);
  // A hidden tab keeps no watch open: watchLive() looks again when it shows.
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) watching.forEach((c) => c.abort());
  });
  await route();
}

start();
