// Cairn's web page: plain JavaScript against /api/v1/ (same origin; the browser sends the credentials and
// the session cookie). Every change of state sends the CSRF token the server wrote into the page.
'use strict';

const csrf = document.querySelector('meta[name="cairn-csrf-token"]').content;
const state = { source: null, snapshot: null, path: '', logsOf: null };

async function api(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: {} };
  if (method !== 'GET') {
    opts.headers['X-Cairn-Csrf-Token'] = csrf;
  }
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch('/api/v1/' + path, opts);
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    throw new Error((data.error && data.error.message) || resp.statusText);
  }
  return data;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'onclick') node.addEventListener('click', v);
    else if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const c of children) {
    node.append(c instanceof Node ? c : document.createTextNode(c === null || c === undefined ? '' : String(c)));
  }
  return node;
}

function bytes(n) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '—';
}

function say(text) {
  document.getElementById('message').textContent = text || '';
}

function progressCell(task) {
  if (!task) return el('td');
  const p = task.progress || {};
  const bar = el('progress', { max: 100, 'data-testid': 'progress-' + task.id });
  if (p.percent !== null && p.percent !== undefined) bar.value = p.percent;
  const rate = p.bytesPerSecond ? bytes(p.bytesPerSecond) + '/s' : '';
  const eta = p.etaSeconds !== null && p.etaSeconds !== undefined ? ' ETA ' + Math.ceil(p.etaSeconds) + 's' : '';
  const files = p.filesDone !== undefined ? ' ' + p.filesDone + (p.filesTotal ? '/' + p.filesTotal : '') + ' files' : '';
  const text = task.status === 'running'
    ? bytes(p.bytesDone || 0) + (p.bytesTotal ? ' of ' + bytes(p.bytesTotal) : '') + files + ' ' + rate + eta
    : task.status;
  return el('td', {}, task.status === 'running' ? bar : '', ' ', el('span', { class: 'status-' + task.status }, text));
}

let tasksById = {};

async function refreshTasks() {
  const data = await api('GET', 'tasks');
  tasksById = {};
  const body = document.getElementById('tasks');
  body.replaceChildren();
  for (const t of data.tasks) {
    tasksById[t.id] = t;
    const actions = el('td', {},
      t.status === 'running' ? el('button', { type: 'button', onclick: () => cancelTask(t.id) }, 'Cancel') : '',
      ' ', el('a', { onclick: () => showLogs(t.id) }, 'logs'));
    body.append(el('tr', { 'data-testid': 'task-row', 'data-status': t.status, 'data-kind': t.kind },
      el('td', {}, t.id), el('td', {}, t.description + (t.scheduled ? ' (scheduled)' : '')),
      el('td', { class: 'status-' + t.status, 'data-testid': 'task-status' }, t.status + (t.error ? ': ' + t.error : '')),
      progressCell(t), actions));
  }
  if (state.logsOf !== null) await showLogs(state.logsOf);
}

async function refreshSources() {
  const data = await api('GET', 'sources');
  const body = document.getElementById('sources');
  body.replaceChildren();
  for (const s of data.sources) {
    const running = s.runningTask ? tasksById[s.runningTask] : null;
    const button = el('button', { type: 'button', 'data-testid': 'snapshot-now', onclick: () => snapshotNow(s.path) }, 'Snapshot now');
    if (running) button.disabled = true;
    const row = el('tr', { 'data-testid': 'source-row', 'data-path': s.path, class: state.source === s.key ? 'selected' : null },
      el('td', {}, el('a', { 'data-testid': 'source-link', onclick: () => selectSource(s.key, s.path) }, s.path)),
      el('td', { 'data-testid': 'snapshot-count' }, s.snapshots),
      el('td', {}, s.lastSnapshot ? when(s.lastSnapshot.time) : 'never'),
      el('td', {}, when(s.nextSnapshotTime)),
      running ? progressCell(running) : el('td', {}, s.runningTask ? 'running' : ''),
      el('td', {}, button));
    body.append(row);
  }
}

async function refreshStatus() {
  const st = await api('GET', 'repo/status');
  document.getElementById('repo-status').textContent =
    st.location + ' — ' + st.snapshots + ' snapshots — ' + st.user + '@' + st.host;
  const m = await api('GET', 'maintenance');
  const last = m.runs.length ? m.runs[0] : null;
  document.getElementById('maintenance').textContent =
    'Quick maintenance ' + (m.intervalSeconds ? 'every ' + m.intervalSeconds + 's' : 'not scheduled') +
    '; next: ' + when(m.nextRun) + '; last run: ' + (last ? when(last.started) + ' (' + last.status + ')' : 'none this session');
}

async function refresh() {
  try {
    await refreshTasks();
    await refreshSources();
    await refreshStatus();
  } catch (e) {
    say('Refresh failed: ' + e.message);
  }
}

async function snapshotNow(path) {
  try {
    say('');
    await api('POST', 'sources/snapshot', { path });
    await refresh();
  } catch (e) {
    say('Snapshot failed to start: ' + e.message);
  }
}

async function cancelTask(id) {
  try { await api('POST', 'tasks/' + id + '/cancel'); await refresh(); } catch (e) { say(e.message); }
}

async function showLogs(id) {
  state.logsOf = id;
  const pre = document.getElementById('task-logs');
  const data = await api('GET', 'tasks/' + id + '/logs');
  pre.hidden = false;
  pre.textContent = 'Task ' + id + '\n' + data.logs.join('\n');
}

async function selectSource(key, path) {
  state.source = key;
  document.getElementById('snapshots-section').hidden = false;
  document.getElementById('snapshots-of').textContent = path;
  const data = await api('GET', 'snapshots?source=' + encodeURIComponent(key));
  const body = document.getElementById('snapshots');
  body.replaceChildren();
  for (const s of data.snapshots) {
    body.append(el('tr', { 'data-testid': 'snapshot-row', 'data-id': s.id },
      el('td', {}, el('a', { 'data-testid': 'snapshot-link', onclick: () => browse(s.id, '') }, when(s.time))),
      el('td', {}, s.id.slice(0, 12)), el('td', {}, s.stats.files), el('td', {}, bytes(s.stats.bytes)),
      el('td', {}, (s.tags && s.tags.type) || '')));
  }
  await refreshSources();
}

// Folders come a page at a time (the server sends `next` while entries remain); "More entries" appends
// the next page.
async function browse(id, path, offset) {
  try {
    const from = offset || 0;
    const data = await api('GET', 'snapshots/' + id + '/browse?path=' + encodeURIComponent(path) + '&offset=' + from);
    state.snapshot = id;
    state.path = data.path;
    document.getElementById('browser-section').hidden = false;
    document.getElementById('browse-where').textContent = id.slice(0, 12) + ':/' + data.path;
    const crumbs = document.getElementById('breadcrumbs');
    crumbs.replaceChildren(el('a', { onclick: () => browse(id, '') }, '/'));
    let acc = '';
    for (const part of data.path.split('/').filter(Boolean)) {
      acc = acc ? acc + '/' + part : part;
      const target = acc;
      crumbs.append(' ', el('a', { onclick: () => browse(id, target) }, part), ' /');
    }
    const body = document.getElementById('entries');
    if (from === 0) body.replaceChildren();
    for (const e of data.entries) {
      const child = data.path ? data.path + '/' + e.name : e.name;
      const name = e.type === 'dir'
        ? el('a', { 'data-testid': 'entry-dir', onclick: () => browse(id, child) }, e.name + '/')
        : el('span', { 'data-testid': 'entry-file' }, e.name + (e.target ? ' → ' + e.target : ''));
      body.append(el('tr', { 'data-testid': 'entry-row' }, el('td', {}, name), el('td', {}, e.type),
        el('td', {}, e.type === 'file' ? bytes(e.size) : ''), el('td', {}, when(e.mtime))));
    }
    const more = document.getElementById('browse-more');
    more.hidden = data.next === null || data.next === undefined;
    more.onclick = () => browse(id, data.path, data.next);
  } catch (e) {
    say('Browse failed: ' + e.message);
  }
}

document.getElementById('new-source').addEventListener('submit', (ev) => {
  ev.preventDefault();
  snapshotNow(document.getElementById('new-source-path').value);
});

document.getElementById('restore-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    say('');
    await api('POST', 'restore', {
      snapshot: state.snapshot, path: state.path,
      target: document.getElementById('restore-target').value,
      overwrite: document.getElementById('restore-overwrite').checked,
    });
    await refresh();
  } catch (e) {
    say('Restore failed to start: ' + e.message);
  }
});

document.getElementById('run-maintenance').addEventListener('click', async () => {
  try { await api('POST', 'maintenance/run'); await refresh(); } catch (e) { say(e.message); }
});

refresh();
setInterval(refresh, 1000);
