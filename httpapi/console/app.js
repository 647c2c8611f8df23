// The audit log console: plain ES modules and the DOM, no framework.
// State that a user may bookmark (the screen and the filter) lives in the
// URL's query string; the token lives in session storage.

import { ApiError, Subscription, claims, getToken, gql, setToken } from './api.js';

const $ = (id) => document.getElementById(id);

/** h builds an element: h('td', {class: 'x'}, 'text', child). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const PRODUCTS = {
  PLATFORM: 'Insight Platform',
  INSIGHT_IDR: 'InsightIDR',
  INSIGHT_APPSEC: 'InsightAppSec',
  INSIGHT_VM: 'InsightVM',
};
const PAGE = 50;
const DEBOUNCE_MS = 300;
const localTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const count = new Intl.NumberFormat('en-US');

/** A <time> in the browser's zone, with UTC on hover. */
function timeEl(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return h('time', { datetime: iso, title: 'UTC: ' + d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') }, localTime.format(d));
}

// ---------------------------------------------------------------- URL state

function readURL() {
  const p = new URLSearchParams(location.search);
  return {
    view: p.get('view') || 'events',
    source: p.get('source') || '',
    q: p.get('q') || '',
    from: p.get('from') || '',
    to: p.get('to') || '',
    reads: p.get('reads') || '',
    kind: p.get('kind') || '',
    id: p.get('id') || '',
  };
}

function writeURL(s, push) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(s)) if (v && !(k === 'view' && v === 'events')) p.set(k, v);
  const url = location.pathname + (p.toString() ? '?' + p : '');
  if (url === location.pathname + location.search) return;
  if (push) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
}

/** datetime-local value (browser zone) to RFC 3339 UTC, and back. */
function localToISO(v) {
  if (!v) return '';
  const d = new Date(v);
  return isNaN(d) ? '' : d.toISOString();
}
function isoToLocal(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d)) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function apiFilter(s) {
  const f = {};
  if (s.source) f.sources = [s.source];
  // The box takes the query language (docs/query-language.md); a plain
  // word in it is the free-text search it always was.
  if (s.q) f.query = s.q;
  // Every search is itself recorded as AUDIT_LOG_VIEWED; they would bury
  // what an investigator looks for, so they are shown only when asked.
  if (!s.reads) f.excludeTypes = ['AUDIT_LOG_VIEWED'];
  if (s.from) f.from = s.from;
  if (s.to) f.to = s.to;
  return f;
}

// ------------------------------------------------------------------ errors

let retryAction = null;

/** Shows err in the alert region with what the user can do about it. */
function showError(what, err, retry) {
  if (err && err.name === 'AbortError') return;
  retryAction = retry || null;
  const title = $('alert-title');
  const actions = $('alert-actions');
  actions.replaceChildren();
  const code = err instanceof ApiError ? err.code : '';
  let text = err && err.message ? err.message : String(err);
  switch (code) {
    case 'UNAUTHENTICATED':
      title.textContent = 'Your sign-in was refused';
      text = `The server did not accept your token (${text}). Sign in again with a fresh token.`;
      actions.append(h('button', { type: 'button', onclick: () => signOut() }, 'Sign in again'));
      retryAction = null;
      break;
    case 'FORBIDDEN':
      title.textContent = 'Administrator rights needed';
      text = `Only administrators of your organization can ${what.toLowerCase()}. ${text}`;
      retryAction = null;
      break;
    case 'NETWORK':
      title.textContent = `Could not ${what.toLowerCase()}`;
      text = 'The audit log service could not be reached. Check your connection, then try again.';
      break;
    default:
      title.textContent = `Could not ${what.toLowerCase()}`;
      if (code) text += ` (${code})`;
  }
  $('alert-text').textContent = text;
  if (retryAction) actions.append(h('button', { type: 'button', id: 'alert-retry', onclick: () => { const r = retryAction; hideError(); r(); } }, 'Try again'));
  actions.append(h('button', { type: 'button', onclick: hideError }, 'Dismiss'));
  $('alert').hidden = false;
}

function hideError() {
  $('alert').hidden = true;
  retryAction = null;
}

// ------------------------------------------------------------------ sign-in

function takeFragmentToken() {
  const m = /^#token=(.+)$/.exec(location.hash);
  if (!m) return;
  setToken(decodeURIComponent(m[1]));
  // The token never stays in the address bar or the history.
  history.replaceState(null, '', location.pathname + location.search);
}

function signOut() {
  stopLive();
  setToken('');
  // Nothing read with the old token stays on the page.
  Object.assign(table, { filter: null, key: '', after: null, loaded: 0, total: null });
  table.ids.clear();
  $('event-rows').replaceChildren();
  $('total').textContent = '';
  settings = null;
  catalog = null;
  delete $('catalog-body').dataset.loaded;
  stopStreams();
  $('stream-rows').replaceChildren();
  $('streams-status').replaceChildren();
  hideError();
  route();
}

function showWho() {
  const c = claims(getToken());
  const role = (c.roles || []).join(', ');
  $('who-name').textContent = `Signed in as ${c.name || c.sub || 'unknown'}${c.email ? ' <' + c.email + '>' : ''}${role ? ' · ' + role : ''}`;
}

// ------------------------------------------------------------------ routing

const SCREENS = ['signin', 'settings', 'events', 'history', 'catalog', 'streams'];
let current = '';

function show(screen) {
  for (const s of SCREENS) $(s).hidden = s !== screen;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === screen || (screen === 'history' && a.dataset.view === 'events')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function route() {
  const signedIn = !!getToken();
  $('nav').hidden = !signedIn;
  $('who').hidden = !signedIn;
  if (!signedIn) {
    current = 'signin';
    show('signin');
    $('token-input').focus();
    return;
  }
  showWho();
  const s = readURL();
  const view = SCREENS.includes(s.view) && s.view !== 'signin' ? s.view : 'events';
  const changed = view !== current;
  current = view;
  show(view);
  if (view !== 'events') stopLive();
  if (view !== 'streams') stopStreams();
  if (view === 'settings') loadSettings();
  if (view === 'events') enterEvents(s);
  if (view === 'history') loadHistory(s.kind, s.id);
  if (view === 'catalog') loadCatalog();
  if (view === 'streams') enterStreams();
  if (changed) document.title = $(view + '-title').textContent.replace(/\s+/g, ' ') + ' · auditlog console';
}

// ----------------------------------------------------------------- settings

const SETTINGS_FIELDS = 'enabled region updatedAt version updatedBy { kind id name email }';
let settings = null;

async function loadSettings() {
  $('settings-forbidden').hidden = true;
  $('audit-toggle').disabled = true;
  try {
    const d = await gql(`query Settings { auditLogSettings { ${SETTINGS_FIELDS} } }`);
    renderSettings(d.auditLogSettings);
  } catch (err) {
    if (err instanceof ApiError && err.code === 'FORBIDDEN') return settingsForbidden(err);
    showError('Load the audit log settings', err, loadSettings);
  }
}

function settingsForbidden(err) {
  const c = claims(getToken());
  $('toggle-state').textContent = 'Unavailable';
  $('settings-facts').replaceChildren();
  $('forbidden-text').textContent =
    `Only administrators of your organization can turn audit logging on or off and choose where its data is stored. ` +
    `You are signed in as ${c.name || c.sub || 'a user'} without the administrator role, so the service refused (${err.message}). ` +
    `Ask an administrator of your organization to change this setting, or to give you the administrator role.`;
  $('settings-forbidden').hidden = false;
}

function renderSettings(s) {
  settings = s;
  const t = $('audit-toggle');
  t.disabled = false;
  t.setAttribute('aria-checked', String(s.enabled));
  $('toggle-state').textContent = s.enabled ? 'Enabled' : 'Disabled';
  const facts = [];
  facts.push(h('dt', {}, 'Region'), h('dd', {}, s.region || 'Not chosen yet (chosen at the first enable)'));
  if (s.updatedAt) {
    const who = s.updatedBy ? (s.updatedBy.name || s.updatedBy.id) + (s.updatedBy.email ? ` <${s.updatedBy.email}>` : '') : 'unknown';
    facts.push(h('dt', {}, 'Last changed by'), h('dd', { id: 'changed-by' }, who));
    facts.push(h('dt', {}, 'Last changed'), h('dd', {}, timeEl(s.updatedAt)));
  } else {
    facts.push(h('dt', {}, 'Last changed'), h('dd', {}, 'Never'));
  }
  $('settings-facts').replaceChildren(...facts);
}

let settingsBusy = false;

async function setEnabled(region) {
  // The switch stays focusable (a dialog returns focus to it) but ignores
  // clicks while a change is under way.
  const t = $('audit-toggle');
  settingsBusy = true;
  t.setAttribute('aria-busy', 'true');
  $('settings-done').hidden = true;
  try {
    const d = region
      ? await gql(`mutation Enable($r: Region!) { enableAuditLog(region: $r) { ${SETTINGS_FIELDS} } }`, { r: region })
      : await gql(`mutation Disable { disableAuditLog { ${SETTINGS_FIELDS} } }`);
    const s = region ? d.enableAuditLog : d.disableAuditLog;
    renderSettings(s);
    const done = $('settings-done');
    done.replaceChildren(...(s.enabled
      ? [h('strong', {}, 'You enabled audit logging!'), ' Collection starts immediately, in region ' + s.region + '.']
      : [h('strong', {}, 'Audit logging is disabled.'), ' Nothing new is collected; recorded events stay readable.']));
    done.hidden = false;
  } catch (err) {
    if (err instanceof ApiError && err.code === 'FORBIDDEN') return settingsForbidden(err);
    showError(region ? 'Enable audit logging' : 'Disable audit logging', err, () => setEnabled(region));
  } finally {
    settingsBusy = false;
    t.removeAttribute('aria-busy');
  }
}

function onToggle() {
  if (!settings || settingsBusy) return;
  if (settings.enabled) return setEnabled(null);
  if (settings.region) return setEnabled(settings.region);
  const dlg = $('enable-dialog');
  openDialog(dlg, $('audit-toggle'));
}

// ------------------------------------------------------------------- dialogs

/** Opens dlg modally; focus returns to opener when it closes. */
function openDialog(dlg, opener) {
  dlg.returnFocus = opener || document.activeElement;
  if (!dlg.open) dlg.showModal();
}

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

function wireDialog(dlg) {
  // showModal makes the page inert, but Tab may still leave for the
  // browser's own controls; keep it cycling inside the dialog.
  dlg.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Tab') return;
    const items = [...dlg.querySelectorAll(FOCUSABLE)].filter((el) => el.getClientRects().length);
    if (!items.length) return;
    const first = items[0];
    const last = items[items.length - 1];
    if (ev.shiftKey && (document.activeElement === first || !dlg.contains(document.activeElement))) {
      ev.preventDefault();
      last.focus();
    } else if (!ev.shiftKey && (document.activeElement === last || !dlg.contains(document.activeElement))) {
      ev.preventDefault();
      first.focus();
    }
  });
  dlg.addEventListener('close', () => {
    const back = dlg.returnFocus;
    dlg.returnFocus = null;
    if (back && back.isConnected) back.focus();
  });
  // A click on the backdrop (outside the dialog's box) closes it.
  dlg.addEventListener('click', (ev) => {
    if (ev.target !== dlg) return;
    const r = dlg.getBoundingClientRect();
    if (ev.clientX < r.left || ev.clientX > r.right || ev.clientY < r.top || ev.clientY > r.bottom) dlg.close();
  });
}

// ------------------------------------------------------------------- events

const ROW_FIELDS = 'id type source description occurredAt liveCursor actor { name email }';
const EVENTS_QUERY = `query Events($filter: AuditEventFilter, $first: Int, $after: String) {
  auditEvents(filter: $filter, first: $first, after: $after) {
    totalCount totalCountCapped complete searchedThrough
    pageInfo { hasNextPage endCursor }
    edges { node { ${ROW_FIELDS} } }
  }
}`;

const table = { filter: null, key: '', after: null, ids: new Set(), loaded: 0, total: null, capped: false, abort: null, firstRender: true };

function filterKey(s) {
  return JSON.stringify([s.source, s.q, s.from, s.to, s.reads]);
}

function enterEvents(s) {
  // The boxes show what the URL says (a bookmark, or the back button).
  $('f-source').value = s.source;
  if ($('f-search').value !== s.q) $('f-search').value = s.q;
  if (localToISO($('f-from').value) !== s.from) $('f-from').value = isoToLocal(s.from);
  if (localToISO($('f-to').value) !== s.to) $('f-to').value = isoToLocal(s.to);
  $('f-reads').checked = !!s.reads;
  if (filterKey(s) !== table.key || !table.filter) loadEvents(s);
  if (!$('exports').dataset.loaded && $('exports').open) loadExports();
}

async function loadEvents(s, more = false) {
  if (table.abort) table.abort.abort();
  const ac = new AbortController();
  table.abort = ac;
  if (!more) {
    table.filter = apiFilter(s);
    table.key = filterKey(s);
    table.after = null;
    if (live) restartLive();
  }
  $('load-more').disabled = true;
  $('event-table').setAttribute('aria-busy', 'true');
  const t0 = performance.now();
  try {
    const d = await gql(EVENTS_QUERY, { filter: table.filter, first: PAGE, after: more ? table.after : null }, { signal: ac.signal });
    const c = d.auditEvents;
    const t1 = performance.now();
    if (!more) {
      table.ids.clear();
      table.loaded = 0;
      $('event-rows').replaceChildren();
    }
    table.total = c.totalCount;
    table.capped = c.totalCountCapped;
    table.after = c.pageInfo.endCursor;
    appendRows(c.edges.map((e) => e.node));
    renderPartial(c);
    // The API may say there is a next page that turns out empty; the total
    // settles it when it is exact. A partial search continues instead.
    $('load-more').hidden = !c.complete || !c.pageInfo.hasNextPage || (!c.totalCountCapped && table.loaded >= c.totalCount);
    $('load-more').disabled = false;
    renderTotal();
    if (table.firstRender && c.edges.length) {
      // Measured once per page load: request sent to rows painted.
      table.firstRender = false;
      requestAnimationFrame(() => {
        const t2 = performance.now();
        window.consoleMetrics = { firstTableRender: { rows: c.edges.length, fetchMs: t1 - t0, renderMs: t2 - t1, totalMs: t2 - t0 } };
      });
    }
  } catch (err) {
    if (err.name === 'AbortError') return;
    $('load-more').disabled = false;
    if (!more) table.key = ''; // entering the screen again tries again
    showError('Load the audit log', err, () => loadEvents(readURL(), more));
  } finally {
    if (table.abort === ac) {
      table.abort = null;
      $('event-table').removeAttribute('aria-busy');
    }
  }
}

/** A search that stopped at its time budget says how far back it looked. */
function renderPartial(c) {
  $('partial').hidden = c.complete;
  if (c.complete) return;
  $('partial-text').replaceChildren('Searched back to ', timeEl(c.searchedThrough), ' —');
  $('continue-search').disabled = false;
}

function renderTotal() {
  const n = table.total === null ? '' : count.format(table.total) + (table.capped ? '+' : '');
  $('total').textContent = `Showing ${count.format(table.loaded)} of ${n} events`;
  $('empty').hidden = table.loaded > 0 || !$('partial').hidden;
}

function eventRow(e, fresh) {
  return h('tr', { 'data-id': e.id, class: fresh ? 'fresh' : null },
    h('td', {}, timeEl(e.occurredAt)),
    h('td', { class: 'action' }, e.type),
    h('td', {}, e.description),
    h('td', {}, e.actor.name || ''),
    h('td', {}, e.actor.email || ''),
    h('td', {}, PRODUCTS[e.source] || e.source),
    h('td', {}, h('button', { type: 'button', class: 'link', 'data-open': e.id, 'aria-label': `View more about ${e.type} of ${localTime.format(new Date(e.occurredAt))}` }, 'View More')));
}

function appendRows(events) {
  const frag = document.createDocumentFragment();
  for (const e of events) {
    if (table.ids.has(e.id)) continue;
    table.ids.add(e.id);
    table.loaded++;
    frag.append(eventRow(e, false));
  }
  $('event-rows').append(frag);
}

/** Filter boxes changed: the URL records the new filter, then rows load. */
let debounce = 0;
function filterChanged(immediate) {
  clearTimeout(debounce);
  const apply = () => {
    const s = {
      view: 'events',
      source: $('f-source').value,
      q: $('f-search').value.trim(),
      from: localToISO($('f-from').value),
      to: localToISO($('f-to').value),
      reads: $('f-reads').checked ? '1' : '',
    };
    if (filterKey(s) === table.key) return;
    writeURL(s, true);
    loadEvents(s);
  };
  if (immediate) apply();
  else debounce = setTimeout(apply, DEBOUNCE_MS);
}

// ------------------------------------------------------- search completion

// The fields of the query language, in the order its documentation lists them.
const QUERY_FIELDS = [
  ['type', 'event type'], ['category', 'type category'], ['source', 'product'], ['actor', 'id, name or email'],
  ['actor.id', ''], ['actor.name', ''], ['actor.email', ''], ['actor.kind', 'USER, API_KEY, SYSTEM'],
  ['target', 'id or name'], ['target.kind', ''], ['target.id', ''], ['target.name', ''], ['ip', 'address or network'],
  ['occurred', 'date, time or range'], ['id', 'event id'], ['request', 'request id'], ['agent', 'user agent'],
];

/** The suggestions for the word being typed: fields, then their values. */
function suggestions(word) {
  const neg = word.startsWith('-') ? '-' : '';
  const w = word.slice(neg.length);
  const colon = w.indexOf(':');
  if (colon < 0) {
    if (!w) return [];
    const lw = w.toLowerCase();
    const out = QUERY_FIELDS.filter(([f]) => f.startsWith(lw) && f !== lw).map(([f, hint]) => ({ value: neg + f + ':', hint }));
    if (catalog && lw.startsWith('details.')) {
      const keys = [...new Set(catalog.flatMap((t) => t.fields.map((f) => f.name)))].sort();
      for (const k of keys) if (('details.' + k).startsWith(w)) out.push({ value: neg + 'details.' + k + ':', hint: 'payload field' });
    } else if ('details.'.startsWith(lw)) {
      out.push({ value: neg + 'details.', hint: 'a payload field' });
    }
    return out;
  }
  const field = w.slice(0, colon).toLowerCase();
  const val = w.slice(colon + 1).toUpperCase();
  let values = [];
  if (field === 'type' && catalog) values = catalog.map((t) => [t.type, t.description]);
  else if (field === 'category' && catalog) values = [...new Set(catalog.map((t) => t.category))].map((c) => [c, '']);
  else if (field === 'source') values = Object.entries(PRODUCTS);
  else if (field === 'actor.kind') values = [['USER', ''], ['API_KEY', ''], ['SYSTEM', '']];
  return values.filter(([v]) => v.startsWith(val) && v !== val).map(([v, hint]) => ({ value: neg + w.slice(0, colon + 1) + v + ' ', hint }));
}

const sug = { items: [], active: -1 };

/** The word the caret is at the end of: from the last space before it. */
function currentWord() {
  const box = $('f-search');
  const upto = box.value.slice(0, box.selectionStart ?? box.value.length);
  const m = /(\S*)$/.exec(upto);
  return { start: upto.length - m[1].length, end: upto.length, word: m[1] };
}

function suggest() {
  sug.items = suggestions(currentWord().word).slice(0, 12);
  sug.active = -1;
  const list = $('search-suggest');
  list.replaceChildren(...sug.items.map((it, i) => h('li', { id: 'sug-' + i, role: 'option', 'aria-selected': 'false', 'data-value': it.value },
    it.value.trim(), it.hint ? h('span', { class: 'muted' }, it.hint) : '')));
  list.hidden = sug.items.length === 0;
  $('f-search').setAttribute('aria-expanded', String(!list.hidden));
  $('f-search').removeAttribute('aria-activedescendant');
}

function closeSuggest() {
  $('search-suggest').hidden = true;
  $('f-search').setAttribute('aria-expanded', 'false');
  $('f-search').removeAttribute('aria-activedescendant');
  sug.items = [];
}

function moveSuggest(by) {
  const n = sug.items.length;
  sug.active = (sug.active + by + n) % n;
  for (const [i, li] of [...$('search-suggest').children].entries()) {
    li.setAttribute('aria-selected', String(i === sug.active));
    if (i === sug.active) li.scrollIntoView({ block: 'nearest' });
  }
  $('f-search').setAttribute('aria-activedescendant', 'sug-' + sug.active);
}

function takeSuggestion(value) {
  const box = $('f-search');
  const { start, end } = currentWord();
  box.value = box.value.slice(0, start) + value + box.value.slice(end);
  const caret = start + value.length;
  box.setSelectionRange(caret, caret);
  // A field awaits its value; a finished term searches.
  if (value.endsWith(' ')) { closeSuggest(); filterChanged(false); } else suggest();
}

function suggestKey(ev) {
  if ($('search-suggest').hidden || !sug.items.length) return;
  if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
    ev.preventDefault();
    moveSuggest(ev.key === 'ArrowDown' ? 1 : -1);
  } else if ((ev.key === 'Enter' || ev.key === 'Tab') && sug.active >= 0) {
    ev.preventDefault();
    takeSuggestion(sug.items[sug.active].value);
  } else if (ev.key === 'Escape') {
    ev.preventDefault();
    closeSuggest();
  }
}

// ------------------------------------------------------------------- detail

const DETAIL_QUERY = `query Event($id: ID!) {
  auditEvent(id: $id) {
    id type category source description occurredAt recordedAt
    actor { kind id name email } target { kind id name }
    ipAddress userAgent requestId details liveCursor
    ... on PolicyEvent { policyId policyName }
  }
}`;

let catalog = null;
async function getCatalog(signal) {
  if (!catalog) {
    const d = await gql('query Catalog { auditEventTypes { type category description fields { name type required description } } }', {}, { signal });
    catalog = d.auditEventTypes;
  }
  return catalog;
}

function fact(name, value) {
  return [h('dt', {}, name), h('dd', {}, value === null || value === undefined || value === '' ? h('span', { class: 'muted' }, 'none') : value)];
}

function show_json(v) {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

async function openDetail(id, opener) {
  const dlg = $('detail');
  $('detail-title').textContent = 'Event';
  $('detail-body').replaceChildren(h('p', { role: 'status' }, 'Loading…'));
  openDialog(dlg, opener);
  try {
    const [d, types] = await Promise.all([gql(DETAIL_QUERY, { id }), getCatalog()]);
    const e = d.auditEvent;
    if (!e) {
      $('detail-body').replaceChildren(h('p', {}, 'This event no longer exists.'));
      return;
    }
    const info = types.find((t) => t.type === e.type) || { description: '', category: e.category, fields: [] };
    $('detail-title').textContent = e.type;
    const actor = `${e.actor.name || e.actor.id}${e.actor.email ? ' <' + e.actor.email + '>' : ''} (${e.actor.kind}, ${e.actor.id})`;
    const target = e.target ? `${e.target.name ? e.target.name + ' ' : ''}(${e.target.kind} ${e.target.id})` : null;
    const body = [
      h('p', { class: 'lead' }, e.description),
      h('dl', { class: 'facts' },
        fact('Time', timeEl(e.occurredAt)),
        fact('Recorded', timeEl(e.recordedAt)),
        fact('Product', PRODUCTS[e.source] || e.source),
        fact('Actor', actor),
        fact('Target', target),
        fact('IP address', e.ipAddress),
        fact('User agent', e.userAgent),
        fact('Request id', e.requestId),
        fact('Event id', e.id),
        fact('Type', `${e.type}: ${info.description}`),
        fact('Category', info.category || e.category)),
    ];
    const fields = info.fields || [];
    const details = e.details || {};
    if (fields.length) {
      body.push(h('h3', {}, 'Payload'), h('dl', { class: 'facts payload' },
        fields.map((f) => fact(h('span', { title: f.description || '' }, f.name), f.name in details ? show_json(details[f.name]) : null))));
    }
    if (e.target && (e.category === 'POLICY' || e.target.kind === 'POLICY')) {
      body.push(h('p', {}, h('a', {
        href: `?view=history&kind=${encodeURIComponent(e.target.kind)}&id=${encodeURIComponent(e.target.id)}`,
        'data-history': '1',
        id: 'history-link',
      }, `Change history of ${e.policyName || e.target.name || 'this ' + e.target.kind.toLowerCase()}`)));
    }
    body.push(h('h3', {}, 'Raw JSON'), h('pre', { class: 'raw', tabindex: '0', 'aria-label': 'Raw JSON of the event' }, JSON.stringify(e, null, 2)));
    $('detail-body').replaceChildren(...body);
  } catch (err) {
    $('detail-body').replaceChildren(h('p', {}, 'The event could not be loaded.'));
    showError('Load the event', err, () => openDetail(id, opener));
  }
}

// ------------------------------------------------------------------ history

const HISTORY_QUERY = `query History($kind: String!, $id: ID!, $after: String) {
  resourceHistory(kind: $kind, id: $id, first: 100, after: $after, order: OLDEST_FIRST) {
    totalCount totalCountCapped
    pageInfo { hasNextPage endCursor }
    edges { node { id type description occurredAt actor { name email id } target { name }
      ... on PolicyEvent { policyName changes { field before after } } } }
  }
}`;
const hist = { kind: '', id: '', after: null, abort: null };

async function loadHistory(kind, id, more = false) {
  if (!kind || !id) {
    $('history-summary').textContent = 'No resource chosen: open an event of a policy and follow its change history link.';
    $('history-list').replaceChildren();
    return;
  }
  if (hist.abort) hist.abort.abort();
  const ac = new AbortController();
  hist.abort = ac;
  if (!more) {
    Object.assign(hist, { kind, id, after: null });
    $('history-list').replaceChildren();
  }
  try {
    const d = await gql(HISTORY_QUERY, { kind, id, after: hist.after }, { signal: ac.signal });
    const c = d.resourceHistory;
    const nodes = c.edges.map((e) => e.node);
    const name = nodes.map((n) => n.policyName || (n.target && n.target.name)).find(Boolean);
    $('history-title').textContent = `Change history of ${name || kind.toLowerCase() + ' ' + id}`;
    $('history-summary').textContent = `${count.format(c.totalCount)}${c.totalCountCapped ? '+' : ''} events on ${kind} ${id}, oldest first.`;
    $('history-list').append(...nodes.map(historyItem));
    hist.after = c.pageInfo.endCursor;
    $('history-more').hidden = !c.pageInfo.hasNextPage;
  } catch (err) {
    if (err.name === 'AbortError') return;
    showError('Load the change history', err, () => loadHistory(kind, id, more));
  }
}

function historyItem(e) {
  const who = (e.actor.name || e.actor.id) + (e.actor.email ? ` <${e.actor.email}>` : '');
  const li = h('li', {},
    h('h2', { class: 'h3' }, e.type, ' ', h('span', { class: 'muted' }, '· '), timeEl(e.occurredAt)),
    h('p', {}, e.description, ' — by ', who));
  if (e.changes && e.changes.length) {
    li.append(h('table', { class: 'diff' },
      h('caption', { class: 'sr-only' }, `Changes of ${e.type} at ${localTime.format(new Date(e.occurredAt))}`),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'Before'), h('th', { scope: 'col' }, 'After'))),
      h('tbody', {}, e.changes.map((c) => h('tr', {},
        h('th', { scope: 'row' }, c.field),
        h('td', { class: 'before' }, c.before === null || c.before === undefined ? '—' : show_json(c.before)),
        h('td', { class: 'after' }, c.after === null || c.after === undefined ? '—' : show_json(c.after)))))));
  }
  return li;
}

// ------------------------------------------------------------------ catalog

async function loadCatalog() {
  const body = $('catalog-body');
  if (body.dataset.loaded) return;
  try {
    const types = await getCatalog();
    const byCat = new Map();
    for (const t of types) {
      if (!byCat.has(t.category)) byCat.set(t.category, []);
      byCat.get(t.category).push(t);
    }
    const out = [];
    for (const [cat, list] of byCat) {
      out.push(h('section', { class: 'category', 'aria-labelledby': 'cat-' + cat },
        h('h2', { id: 'cat-' + cat }, cat),
        h('dl', { class: 'types' }, list.map((t) => [
          h('dt', {}, h('code', {}, t.type)),
          h('dd', {}, t.description,
            t.fields.length
              ? h('table', { class: 'fields' },
                h('caption', { class: 'sr-only' }, `Payload fields of ${t.type}`),
                h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Required'), h('th', { scope: 'col' }, 'Description'))),
                h('tbody', {}, t.fields.map((f) => h('tr', {}, h('td', {}, h('code', {}, f.name)), h('td', {}, f.type), h('td', {}, f.required ? 'yes' : 'no'), h('td', {}, f.description || '')))))
              : h('p', { class: 'muted' }, 'No payload fields.')),
        ]))));
    }
    body.replaceChildren(...out);
    body.dataset.loaded = '1';
  } catch (err) {
    showError('Load the event catalog', err, loadCatalog);
  }
}

// -------------------------------------------------------------- log streams

const STREAM_FIELDS = `id name status pausedBy lastError lastErrorAt failingSince lastDeliveredAt lag delivered failed skipped skippedBefore
  destination { kind format url host port serverName index sourcetype ack secretSet } filter { types sources query }`;
const STREAMS_REFRESH_MS = 5000;
const KINDS = { WEBHOOK: 'Webhook', SPLUNK_HEC: 'Splunk HEC', SYSLOG: 'Syslog' };
const streams = { timer: 0, abort: null, byId: new Map(), editing: null };
/** The form's destination kinds, as the API's input fields name them. */
const FORM_KINDS = { WEBHOOK: 'webhook', SPLUNK_HEC: 'splunk', SYSLOG: 'syslog' };

function enterStreams() {
  stopStreams();
  loadStreams();
}

function stopStreams() {
  clearTimeout(streams.timer);
  streams.timer = 0;
  if (streams.abort) streams.abort.abort();
  streams.abort = null;
}

/** Loads the streams, then again every 5 s while the view is open. */
async function loadStreams() {
  clearTimeout(streams.timer);
  if (streams.abort) streams.abort.abort();
  const ac = new AbortController();
  streams.abort = ac;
  try {
    const d = await gql(`query Streams { logStreams { ${STREAM_FIELDS} } }`, {}, { signal: ac.signal });
    if (current !== 'streams') return;
    $('streams-forbidden').hidden = true;
    $('streams-admin').hidden = false;
    renderStreams(d.logStreams);
  } catch (err) {
    if (err.name === 'AbortError') return;
    if (err instanceof ApiError && err.code === 'FORBIDDEN') return streamsForbidden(err);
    showError('List the log streams', err, loadStreams);
    return;
  }
  if (current === 'streams') streams.timer = setTimeout(loadStreams, STREAMS_REFRESH_MS);
}

function streamsForbidden(err) {
  const c = claims(getToken());
  $('streams-admin').hidden = true;
  $('stream-rows').replaceChildren();
  $('streams-forbidden-text').textContent =
    `Only administrators of your organization can see and manage log streams. ` +
    `You are signed in as ${c.name || c.sub || 'a user'} without the administrator role, so the service refused (${err.message}). ` +
    `Ask an administrator of your organization if events should be delivered to your SIEM.`;
  $('streams-forbidden').hidden = false;
}

function destinationText(d) {
  const where = d.kind === 'SYSLOG' ? `${d.host}:${d.port}` : d.url;
  return [h('strong', {}, KINDS[d.kind] || d.kind), ' ', h('span', { class: 'muted' }, d.format), h('br', {}), h('code', {}, where || '')];
}

function stateText(s) {
  const out = [h('strong', { class: s.status === 'ERROR' ? 'err' : null }, s.status)];
  if (s.status === 'PAUSED' && s.pausedBy) out.push(s.pausedBy === 'AUDITD' ? ' by auditd after failing too long' : ' by an administrator');
  if (s.lastError && (s.status === 'ERROR' || s.status === 'PAUSED')) out.push(h('br', {}), h('span', { class: 'err' }, s.lastError));
  if (s.failingSince) out.push(h('br', {}), 'failing since ', timeEl(s.failingSince));
  // Events the region's retention removed before the stream sent them:
  // lost to this destination, and said so rather than passed over.
  if (Number(s.skipped) > 0) {
    out.push(h('br', {}), h('span', { class: 'err skipped' }, 'Events recorded before ', s.skippedBefore ? timeEl(s.skippedBefore) : 'then',
      ` were removed by retention before they were sent (at most ${count.format(Number(s.skipped))})`));
  }
  return out;
}

/**
 * Updates the table in place, row by row, so a refresh never takes the
 * focus from a button in it.
 */
function renderStreams(list) {
  const tbody = $('stream-rows');
  const seen = new Set();
  for (const s of list) {
    seen.add(s.id);
    streams.byId.set(s.id, s);
    let tr = tbody.querySelector(`tr[data-id="${CSS.escape(s.id)}"]`);
    if (!tr) {
      tr = h('tr', { 'data-id': s.id },
        h('th', { scope: 'row', class: 'name' }), h('td', { class: 'dest' }), h('td', { class: 'state' }), h('td', { class: 'last' }),
        h('td', { class: 'lag' }), h('td', { class: 'delivered' }), h('td', { class: 'failed' }),
        h('td', { class: 'actions' },
          h('button', { type: 'button', 'data-act': 'edit' }, 'Edit'),
          h('button', { type: 'button', 'data-act': 'test' }, 'Test'),
          h('button', { type: 'button', 'data-act': 'pause' }, 'Pause'),
          h('button', { type: 'button', 'data-act': 'delete' }, 'Delete')));
      tbody.append(tr);
    }
    const cell = (cls, ...content) => tr.querySelector('.' + cls).replaceChildren(...content.flat());
    cell('name', s.name);
    cell('dest', destinationText(s.destination));
    cell('state', stateText(s));
    cell('last', s.lastDeliveredAt ? timeEl(s.lastDeliveredAt) : 'Never');
    cell('lag', s.lag === null || s.lag === undefined ? '—' : count.format(s.lag));
    cell('delivered', count.format(s.delivered));
    cell('failed', count.format(s.failed));
    tr.dataset.status = s.status;
    tr.querySelector('button[data-act=edit]').setAttribute('aria-label', `Edit ${s.name}`);
    tr.querySelector('button[data-act=test]').setAttribute('aria-label', `Test ${s.name}`);
    tr.querySelector('button[data-act=delete]').setAttribute('aria-label', `Delete ${s.name}`);
    const toggle = tr.querySelector('button[data-act=pause], button[data-act=resume]');
    const paused = s.status === 'PAUSED';
    toggle.dataset.act = paused ? 'resume' : 'pause';
    toggle.textContent = paused ? 'Resume' : 'Pause';
    toggle.setAttribute('aria-label', `${toggle.textContent} ${s.name}`);
    toggle.disabled = s.status === 'DISABLED';
  }
  for (const tr of [...tbody.children]) {
    if (!seen.has(tr.dataset.id)) {
      streams.byId.delete(tr.dataset.id);
      tr.remove();
    }
  }
  $('streams-empty').hidden = list.length > 0;
}

function streamSay(kind, ...content) {
  const st = $('streams-status');
  st.className = kind === 'ok' ? 'success' : kind === 'bad' ? 'notice' : '';
  st.replaceChildren(h('p', {}, ...content));
}

function newSecret() {
  const b = new Uint8Array(32);
  crypto.getRandomValues(b);
  return 'whsec_' + btoa(String.fromCharCode(...b));
}

/** Shows the fields of the chosen destination; the others' are disabled, so the browser neither checks nor sends them. */
function showKind(kind) {
  $('s-kind').value = kind;
  for (const fs of $('stream-form').querySelectorAll('fieldset[data-kind]')) {
    fs.hidden = fs.disabled = fs.dataset.kind !== kind;
  }
}

/** The destination input of the form's kind. Empty secrets on an edit keep the stored ones. */
function destinationInput() {
  const v = (id) => $(id).value.trim();
  const opt = (id) => v(id) || null;
  const format = $('s-format').value;
  switch ($('s-kind').value) {
    case 'splunk':
      return { splunk: { url: v('s-hec-url'), token: v('s-hec-token'), index: opt('s-hec-index'), sourcetype: opt('s-hec-sourcetype'), ack: $('s-hec-ack').checked, format } };
    case 'syslog':
      return { syslog: { host: v('s-sys-host'), port: Number(v('s-sys-port')), serverName: opt('s-sys-server-name'), format } };
    default:
      return { webhook: { url: v('s-url'), secrets: [v('s-secret')], format } };
  }
}

/** Fills the form with a stream's settings to change them; secrets stay stored unless given again. */
function editStream(s) {
  streams.editing = s.id;
  const d = s.destination;
  const kind = FORM_KINDS[d.kind] || 'webhook';
  $('stream-form').reset();
  showKind(kind);
  $('s-kind').disabled = true;
  $('s-kind-hint').hidden = false;
  $('s-name').value = s.name;
  $('s-format').value = d.format;
  $('s-query').value = (s.filter && s.filter.query) || '';
  if (kind === 'webhook') $('s-url').value = d.url || '';
  if (kind === 'splunk') {
    $('s-hec-url').value = d.url || '';
    $('s-hec-index').value = d.index || '';
    $('s-hec-sourcetype').value = d.sourcetype || '';
    $('s-hec-ack').checked = !!d.ack;
  }
  if (kind === 'syslog') {
    $('s-sys-host').value = d.host || '';
    $('s-sys-port').value = d.port || 6514;
    $('s-sys-server-name').value = d.serverName || '';
  }
  for (const id of ['s-secret', 's-hec-token']) {
    $(id).required = false;
    $(id).placeholder = 'Stored; leave empty to keep it';
  }
  $('stream-form-title').textContent = `Edit ${s.name}`;
  $('s-create').textContent = 'Save changes';
  $('s-cancel').hidden = false;
  $('s-name').focus();
}

/** Puts the form back to creating a new stream. */
function resetStreamForm() {
  streams.editing = null;
  $('stream-form').reset();
  showKind('webhook');
  $('s-kind').disabled = false;
  $('s-kind-hint').hidden = true;
  for (const id of ['s-secret', 's-hec-token']) {
    $(id).required = true;
    $(id).placeholder = '';
  }
  $('s-secret').type = 'password';
  $('stream-form-title').textContent = 'New log stream';
  $('s-create').textContent = 'Create stream';
  $('s-cancel').hidden = true;
}

async function submitStream(ev) {
  ev.preventDefault();
  const button = $('s-create');
  const name = $('s-name').value.trim();
  const query = $('s-query').value.trim();
  const id = streams.editing;
  button.disabled = true;
  streamSay('', id ? `Saving ${name}…` : `Creating ${name}…`);
  try {
    if (id) {
      const d = await gql(`mutation Update($input: UpdateLogStreamInput!) { updateLogStream(input: $input) { ${STREAM_FIELDS} } }`, {
        // The form shows only the query; the types and sources stay as they are.
        input: { id, name, destination: destinationInput(), filter: { types: streams.byId.get(id)?.filter.types || [], sources: streams.byId.get(id)?.filter.sources || [], query: query || null } },
      });
      resetStreamForm();
      streamSay('ok', h('strong', {}, `Saved ${d.updateLogStream.name}.`));
    } else {
      const input = { name, destination: destinationInput() };
      if (query) input.filter = { query };
      const d = await gql(`mutation Create($input: CreateLogStreamInput!) { createLogStream(input: $input) { ${STREAM_FIELDS} } }`, { input });
      resetStreamForm();
      streamSay('ok', h('strong', {}, `Created ${d.createLogStream.name}.`), ' It delivers events recorded from now on.');
    }
    await loadStreams();
  } catch (err) {
    $('streams-status').replaceChildren();
    if (err instanceof ApiError && err.code === 'FORBIDDEN') return streamsForbidden(err);
    showError(id ? 'Save the log stream' : 'Create the log stream', err);
  } finally {
    button.disabled = false;
  }
}

async function streamAction(act, id, opener) {
  const s = streams.byId.get(id);
  if (!s) return;
  if (act === 'edit') return editStream(s);
  if (act === 'delete') {
    $('stream-delete-text').textContent = `Delete ${s.name}? It stops delivering at once and its position is lost; this cannot be undone.`;
    $('stream-delete-dialog').dataset.id = id;
    openDialog($('stream-delete-dialog'), opener);
    return;
  }
  const words = { test: 'Test', pause: 'Pause', resume: 'Resume', 'delete-confirmed': 'Delete' };
  opener.disabled = true;
  streamSay('', `${words[act]}: ${s.name}…`);
  try {
    if (act === 'test') {
      const d = await gql(`mutation Test($id: ID!) { testLogStream(id: $id) { ok status code body error } }`, { id });
      const r = d.testLogStream;
      const parts = [h('strong', {}, r.ok ? `${s.name} accepted the test event.` : `The test of ${s.name} failed.`)];
      if (r.status) parts.push(` HTTP ${r.status}.`);
      if (r.code) parts.push(` Code ${r.code}.`);
      if (r.error) parts.push(' ', r.error);
      if (r.body) parts.push(' It answered: ', h('code', { id: 'stream-answer' }, r.body));
      streamSay(r.ok ? 'ok' : 'bad', ...parts);
    } else {
      const field = { pause: 'pauseLogStream', resume: 'resumeLogStream', 'delete-confirmed': 'deleteLogStream' }[act];
      const d = await gql(`mutation Act($id: ID!) { ${field}(id: $id) { ${STREAM_FIELDS} } }`, { id });
      const done = { pause: 'Paused', resume: 'Resumed', 'delete-confirmed': 'Deleted' }[act];
      streamSay('ok', h('strong', {}, `${done} ${d[field].name}.`));
      await loadStreams();
      // Its row, and the button that was focused, are gone.
      if (act === 'delete-confirmed') {
        if (streams.editing === id) resetStreamForm();
        $('main').focus();
      }
    }
  } catch (err) {
    $('streams-status').replaceChildren();
    if (err instanceof ApiError && err.code === 'FORBIDDEN') return streamsForbidden(err);
    showError(`${words[act]} the log stream`, err, () => streamAction(act, id, opener));
  } finally {
    if (opener.isConnected) opener.disabled = false;
  }
}

// ------------------------------------------------------------------ exports

const JOB_FIELDS = 'id status format rowCount totalRows progress createdAt finishedAt error downloadUrl';
const POLL_MS = 500;
const POLL_MAX = 1200; // ten minutes

async function startExport(format) {
  const status = $('export-status');
  status.className = '';
  status.replaceChildren(h('p', {}, `Starting the ${format} export…`));
  try {
    const d = await gql(`mutation Export($filter: AuditEventFilter, $format: ExportFormat) { startAuditExport(filter: $filter, format: $format) { ${JOB_FIELDS} } }`,
      { filter: table.filter || apiFilter(readURL()), format });
    await followExport(d.startAuditExport);
  } catch (err) {
    status.replaceChildren();
    showError(`Export to ${format}`, err, () => startExport(format));
  }
}

async function followExport(job) {
  const status = $('export-status');
  for (let i = 0; i < POLL_MAX; i++) {
    if (job.status === 'SUCCEEDED') {
      status.className = 'success';
      status.replaceChildren(
        h('span', {}, h('strong', {}, 'Your export is ready. '), `${count.format(job.rowCount)} events, ${job.format}.`),
        h('a', { class: 'button', href: job.downloadUrl, download: '', id: 'download' }, `Download ${job.format}`));
      loadExports();
      return;
    }
    if (job.status === 'FAILED' || job.status === 'CANCELLED') {
      status.replaceChildren();
      loadExports();
      throw new ApiError(`The export ${job.status.toLowerCase()}${job.error ? ': ' + job.error : ''}.`, job.status);
    }
    const pct = Math.round((job.progress || 0) * 100);
    status.replaceChildren(
      h('label', { for: 'export-progress' }, `Exporting ${job.format}: ${job.status === 'QUEUED' ? 'queued' : pct + '%'}${job.totalRows ? ` (${count.format(job.rowCount)} of ${count.format(job.totalRows)} events)` : ''} `),
      h('progress', { id: 'export-progress', max: '1', value: String(job.progress || 0) }));
    await new Promise((r) => setTimeout(r, POLL_MS));
    const d = await gql(`query Job($id: ID!) { exportJob(id: $id) { ${JOB_FIELDS} } }`, { id: job.id });
    if (!d.exportJob) throw new ApiError('The export job has gone.', 'NOT_FOUND');
    job = d.exportJob;
  }
  throw new ApiError('The export is taking longer than ten minutes; see Recent exports.', 'TIMEOUT');
}

async function loadExports() {
  const body = $('exports-body');
  try {
    const d = await gql(`query Exports { auditExports(first: 10) { ${JOB_FIELDS} } }`);
    $('exports').dataset.loaded = '1';
    const jobs = d.auditExports;
    if (!jobs.length) return body.replaceChildren(h('p', {}, 'No exports in the last 7 days.'));
    body.replaceChildren(h('table', { id: 'exports-table' },
      h('caption', { class: 'sr-only' }, 'Recent exports'),
      h('thead', {}, h('tr', {}, ['Started', 'Format', 'State', 'Events', 'File'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, jobs.map((j) => h('tr', {},
        h('td', {}, timeEl(j.createdAt)), h('td', {}, j.format), h('td', {}, j.status + (j.error ? ': ' + j.error : '')),
        h('td', {}, count.format(j.rowCount)),
        h('td', {}, j.downloadUrl ? h('a', { href: j.downloadUrl, download: '' }, 'Download') : ''))))));
  } catch (err) {
    showError('List recent exports', err, loadExports);
  }
}

// --------------------------------------------------------------------- live

const LIVE_QUERY = `subscription Live($filter: AuditEventFilter, $after: String) {
  auditEventRecorded(filter: $filter, after: $after) { ${ROW_FIELDS} }
}`;
let live = null;
let liveCursor = null;

function startLive() {
  liveCursor = null;
  const filter = table.filter || {};
  live = new Subscription({
    query: LIVE_QUERY,
    resume: () => ({ filter, after: liveCursor }),
    onData: (d) => {
      const e = d.auditEventRecorded;
      liveCursor = e.liveCursor;
      if (table.ids.has(e.id)) return;
      table.ids.add(e.id);
      table.loaded++;
      if (table.total !== null) table.total++;
      $('event-rows').prepend(eventRow(e, true));
      renderTotal();
    },
    onState: (state, msg) => {
      const words = { connecting: 'Connecting…', live: 'Streaming new events', retrying: 'Connection lost; reconnecting…', stopped: msg || '' };
      $('live-status').textContent = words[state];
      if (state === 'stopped') {
        $('live-toggle').setAttribute('aria-checked', 'false');
        if (msg) showError('Follow the log live', new ApiError(msg, 'LIVE'), () => { setLive(true); });
        live = null;
      }
    },
  });
  window.consoleLive = live; // lets tests drop the connection
  live.start();
}

function stopLive() {
  if (live) {
    const l = live;
    live = null;
    l.stop();
  }
  $('live-toggle').setAttribute('aria-checked', 'false');
}

function restartLive() {
  stopLive();
  setLive(true);
}

function setLive(on) {
  if (on) {
    $('live-toggle').setAttribute('aria-checked', 'true');
    startLive();
  } else {
    stopLive();
  }
}

// ------------------------------------------------------------------- wiring

function init() {
  takeFragmentToken();
  for (const d of document.querySelectorAll('dialog')) wireDialog(d);

  $('signin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('token-input').value.trim();
    if (!v) return;
    setToken(v.replace(/^Bearer\s+/i, ''));
    $('token-input').value = '';
    route();
    $('main').focus();
  });
  $('signout').addEventListener('click', signOut);

  // In-page navigation keeps the page (and a live feed's connection).
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest('a[data-view], a[data-history]');
    if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
    ev.preventDefault();
    if ($('detail').open) $('detail').close();
    history.pushState(null, '', location.pathname + a.getAttribute('href'));
    hideError();
    route();
    $('main').focus();
  });
  window.addEventListener('popstate', route);

  $('audit-toggle').addEventListener('click', onToggle);
  $('enable-cancel').addEventListener('click', () => $('enable-dialog').close());
  $('enable-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const region = new FormData(ev.target).get('region');
    $('enable-dialog').close();
    setEnabled(region);
  });

  $('filters').addEventListener('submit', (ev) => { ev.preventDefault(); filterChanged(true); });
  $('f-search').addEventListener('input', () => { filterChanged(false); suggest(); });
  $('f-search').addEventListener('keydown', suggestKey);
  $('f-search').addEventListener('focus', () => getCatalog().catch(() => {}));
  $('f-search').addEventListener('blur', () => setTimeout(closeSuggest, 150));
  $('search-suggest').addEventListener('mousedown', (ev) => {
    const li = ev.target.closest('li[role=option]');
    if (!li) return;
    ev.preventDefault(); // keep the focus in the box
    takeSuggestion(li.dataset.value);
  });
  for (const id of ['f-source', 'f-from', 'f-to', 'f-reads']) $(id).addEventListener('change', () => filterChanged(true));
  $('clear-filters').addEventListener('click', () => {
    for (const id of ['f-source', 'f-search', 'f-from', 'f-to']) $(id).value = '';
    $('f-reads').checked = false;
    filterChanged(true);
  });
  $('continue-search').addEventListener('click', () => { $('continue-search').disabled = true; loadEvents(readURL(), true); });
  $('load-more').addEventListener('click', () => loadEvents(readURL(), true));
  $('event-rows').addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-open]');
    if (b) openDetail(b.dataset.open, b);
  });
  $('detail-close').addEventListener('click', () => $('detail').close());
  $('export-csv').addEventListener('click', () => startExport('CSV'));
  $('export-ndjson').addEventListener('click', () => startExport('NDJSON'));
  $('exports').addEventListener('toggle', () => { if ($('exports').open) loadExports(); });
  $('live-toggle').addEventListener('click', () => setLive($('live-toggle').getAttribute('aria-checked') !== 'true'));
  $('history-more').addEventListener('click', () => loadHistory(hist.kind, hist.id, true));
  $('stream-form').addEventListener('submit', submitStream);
  $('s-kind').addEventListener('change', () => showKind($('s-kind').value));
  $('s-cancel').addEventListener('click', () => { resetStreamForm(); $('streams-status').replaceChildren(); });
  $('s-secret-new').addEventListener('click', () => {
    $('s-secret').type = 'text';
    $('s-secret').value = newSecret();
  });
  $('stream-rows').addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-act]');
    if (b) streamAction(b.dataset.act, b.closest('tr').dataset.id, b);
  });
  $('stream-delete-cancel').addEventListener('click', () => $('stream-delete-dialog').close());
  $('stream-delete-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const dlg = $('stream-delete-dialog');
    const id = dlg.dataset.id;
    dlg.close();
    const b = $('stream-rows').querySelector(`tr[data-id="${CSS.escape(id)}"] button[data-act=delete]`);
    if (b) streamAction('delete-confirmed', id, b);
  });
  route();
}

init();
