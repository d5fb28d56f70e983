// The edgehook console: polls GET /console/state every second with the admin token (kept in
// this tab's session storage, sent as a bearer token) and draws it; actions go to the admin
// API after a confirmation. Charts are SVG drawn here: no library, no network but this listener.
'use strict';

const TOKEN_KEY = 'edgehook-admin-token';
const $ = (id) => document.getElementById(id);
const esc = (text) => String(text ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const COLORS = ['#2563eb', '#16a34a', '#d97706', '#dc2626', '#7c3aed', '#0891b2'];

let state = null;
let tab = 'functions';
let timer = null;

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 401) { logout('The token was refused.'); throw new Error('unauthorized'); }
  const text = await response.text();
  let value = null;
  try { value = text ? JSON.parse(text) : null; } catch (_) { value = { error: text }; }
  if (!response.ok) throw new Error((value && value.error) || `${response.status}`);
  return value;
}

// --- logging in and out -------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  const given = $('token').value.trim();
  const response = await fetch('/auth', { headers: { Authorization: `Bearer ${given}` } });
  if (response.status !== 204) {
    $('login-error').textContent = response.status === 403
      ? 'No admin token is configured on this node (server.admin_token).'
      : 'That is not the admin token.';
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, given);
  $('token').value = '';
  start();
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(timer);
  timer = null;
  for (const section of document.querySelectorAll('.tab')) section.hidden = true;
  $('tabs').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
}

function start() {
  $('login').hidden = true;
  $('tabs').hidden = false;
  $('logout').hidden = false;
  show(tab);
  refresh();
  timer = setInterval(refresh, 1000);
}

function show(name) {
  tab = name;
  for (const button of document.querySelectorAll('#tabs button')) button.classList.toggle('active', button.dataset.tab === name);
  for (const section of document.querySelectorAll('.tab')) section.hidden = section.id !== name;
  if (state) render();
}

async function refresh() {
  try {
    state = await api('GET', '/console/state?seconds=300');
    render();
  } catch (error) {
    if (error.message !== 'unauthorized') $('updated').textContent = `cannot reach the node: ${error.message}`;
  }
}

// --- confirmations and actions ------------------------------------------------------------

function confirmThen(text, action) {
  const dialog = $('confirm');
  $('confirm-text').textContent = text;
  dialog.onclose = async () => {
    if (dialog.returnValue !== 'ok') return;
    try {
      const result = await action();
      $('status').textContent = result || 'Done.';
      refresh();
    } catch (error) {
      if (error.message !== 'unauthorized') $('status').textContent = `Refused: ${error.message}`;
    }
  };
  dialog.showModal();
}

function publish(name) {
  confirmThen(`Publish $LATEST of ${name} as a new version?`, async () => {
    const answer = await api('POST', `/functions/${encodeURIComponent(name)}/versions`);
    return `Published ${name} version ${answer.version}.`;
  });
}

function moveAlias(name, alias) {
  const input = document.querySelector(`input[data-move="${name}:${alias}"]`);
  const version = Number(input.value);
  confirmThen(`Point ${name}:${alias} at version ${version}, all at once?`, async () => {
    await api('PUT', `/functions/${encodeURIComponent(name)}/aliases/${encodeURIComponent(alias)}`, { version });
    return `${name}:${alias} now points at version ${version}.`;
  });
}

function startDeployment(event) {
  event.preventDefault();
  const name = $('deploy-function').value;
  const alias = $('deploy-alias').value.trim();
  const version = Number($('deploy-version').value);
  const kind = $('deploy-strategy').value;
  const strategy = kind === 'canary' || kind === 'linear'
    ? { type: kind, percent: Number($('deploy-percent').value), interval: $('deploy-interval').value.trim() }
    : kind;
  const body = { version, strategy, alarm: { error_rate: Number($('deploy-alarm').value), min_invocations: Number($('deploy-min').value) } };
  const described = typeof strategy === 'string' ? strategy : `${strategy.type} ${strategy.percent}% every ${strategy.interval}`;
  confirmThen(`Deploy version ${version} of ${name} to ${alias} (${described}), rolled back when its error rate passes ${body.alarm.error_rate}?`, async () => {
    const answer = await api('POST', `/functions/${encodeURIComponent(name)}/aliases/${encodeURIComponent(alias)}/deployments`, body);
    show('deployments');
    return `Deployment ${answer.id} started.`;
  });
}

function stopDeployment(id, name, alias) {
  confirmThen(`Stop deployment ${id} of ${name}:${alias}? Its new version loses all traffic.`, async () => {
    await api('POST', `/functions/${encodeURIComponent(name)}/aliases/${encodeURIComponent(alias)}/deployments/${encodeURIComponent(id)}/stop`);
    return `Deployment ${id} stopped.`;
  });
}

function purge(event) {
  event.preventDefault();
  const paths = $('purge-paths').value.split('\n').map((p) => p.trim()).filter(Boolean);
  const site = $('purge-distribution').value;
  const where = site ? `/distributions/${encodeURIComponent(site)}/cache/purge` : '/cache/purge';
  const label = site ? `site ${site}` : 'the top-level behaviors';
  confirmThen(`Purge ${paths.length} path(s) of ${label} from the cache of every node?`, async () => {
    const answer = await api('POST', where, { paths });
    $('purge-paths').value = '';
    return `Purge ${answer.id}: ${answer.status}, ${answer.purged} object(s).`;
  });
}

// --- charts -------------------------------------------------------------------------------

// A line chart over times `t` (ms): `series` of {name, values, color, dashed}; `markers` of
// {at, label, kind}; values may be null (a gap).
function chart({ t, series, yMax, format, markers = [], width = 560, height = 180, cls = '', attrs = '' }) {
  const left = 58, right = 10, top = 10, bottom = 22;
  const w = width - left - right, h = height - top - bottom;
  const t0 = t.length ? Math.min(t[0], ...markers.map((m) => m.at)) : 0;
  const t1 = t.length ? Math.max(t[t.length - 1], t0 + 1000) : 1;
  const values = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  const top_ = yMax ?? Math.max(1e-9, ...values) * 1.1;
  const x = (at) => left + ((at - t0) / (t1 - t0)) * w;
  const y = (v) => top + h - (Math.min(v, top_) / top_) * h;
  let svg = `<svg class="chart ${cls}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${attrs}>`;
  for (const f of [0, 0.5, 1]) {
    svg += `<line class="grid" x1="${left}" x2="${left + w}" y1="${y(top_ * f)}" y2="${y(top_ * f)}"/>`;
    svg += `<text x="${left - 4}" y="${y(top_ * f) + 4}" text-anchor="end">${esc(format(top_ * f))}</text>`;
  }
  if (t.length) {
    const seconds = Math.round((t1 - t0) / 1000);
    svg += `<text x="${left}" y="${height - 6}">-${seconds}s</text><text x="${left + w}" y="${height - 6}" text-anchor="end">now</text>`;
  }
  for (const m of markers) {
    svg += `<line class="marker ${esc(m.kind || '')}" x1="${x(m.at)}" x2="${x(m.at)}" y1="${top}" y2="${top + h}"><title>${esc(m.label)}</title></line>`;
  }
  for (const s of series) {
    let d = '';
    let pen = 'M';
    s.values.forEach((v, i) => {
      if (v === null || v === undefined || t[i] === undefined) { pen = 'M'; return; }
      d += `${pen}${x(t[i]).toFixed(1)},${y(v).toFixed(1)} `;
      pen = 'L';
    });
    svg += `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2" ${s.dashed ? 'stroke-dasharray="6 4"' : ''} data-series="${esc(s.name)}"/>`;
  }
  return `${svg}</svg>`;
}

function legend(series) {
  return `<div class="legend">${series.map((s) => `<span><i style="background:${s.color}"></i>${esc(s.name)}</span>`).join('')}</div>`;
}

const percent = (v) => `${Math.round(v * 100)}%`;
const perSecond = (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1)) + '/s';
const ms = (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(2)) + ' ms';
const bytes = (n) => (n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

// --- pages --------------------------------------------------------------------------------

function split(alias) {
  const extra = alias.additional_version;
  const share = extra ? extra.weight : 0;
  const old = `<span class="old" style="width:${(1 - share) * 100}%">v${alias.version} ${percent(1 - share)}</span>`;
  const young = extra ? `<span class="new" style="width:${share * 100}%">v${extra.version} ${percent(share)}</span>` : '';
  return `<div class="split" data-weight="${share}">${old}${young}</div>`;
}

let renderedFunctions = null;

function renderFunctions() {
  // Drawn again only when something changed: a version typed into a field must survive.
  const detail = JSON.stringify(state.functions_detail.map((f) => [f.name, f.versions, f.aliases, f.error]));
  if (detail === renderedFunctions) return;
  renderedFunctions = detail;
  const list = state.functions_detail.map((f) => {
    const aliases = Object.entries(f.aliases || {}).map(([name, alias]) => `
      <tr><td><b>${esc(name)}</b></td><td>${split(alias)}</td>
        <td><input type="number" min="1" style="width:5em" data-move="${esc(f.name)}:${esc(name)}" placeholder="version">
        <button class="secondary" data-action="move" data-function="${esc(f.name)}" data-alias="${esc(name)}">Move</button></td></tr>`).join('');
    const versions = (f.versions || []).map((v) => `v${v.version}`).join(', ') || 'none';
    return `<div class="card function" data-function="${esc(f.name)}">
      <h3>${esc(f.name)}</h3>
      ${f.error ? `<p class="error">${esc(f.error)}</p>` : ''}
      <p class="muted">Versions: ${esc(versions)} <button class="secondary" data-action="publish" data-function="${esc(f.name)}">Publish $LATEST</button></p>
      ${aliases ? `<table>${aliases}</table>` : '<p class="muted">No aliases.</p>'}
    </div>`;
  }).join('') || '<p class="muted">No functions are configured.</p>';
  $('function-list').innerHTML = list;
  const select = $('deploy-function');
  const names = state.functions_detail.map((f) => f.name);
  if ([...select.options].map((o) => o.value).join() !== names.join()) {
    select.innerHTML = names.map((n) => `<option>${esc(n)}</option>`).join('');
  }
}

// Each deployment's card is made once and updated in place, so that its Stop button stays the
// same element between updates.
function renderDeployments() {
  const list = $('deployment-list');
  const deployments = [...state.deployments].sort((a, b) => b.started_ms - a.started_ms);
  const ids = new Set(deployments.map((d) => d.id));
  for (const card of [...list.querySelectorAll('.deployment')]) if (!ids.has(card.dataset.id)) card.remove();
  const empty = list.querySelector('.empty');
  if (deployments.length === 0) {
    if (!empty) list.innerHTML = '<p class="muted empty">No deployment in the last 15 minutes.</p>';
    return;
  }
  if (empty) empty.remove();
  deployments.forEach((d, position) => {
    let card = [...list.querySelectorAll('.deployment')].find((c) => c.dataset.id === d.id);
    if (!card) {
      card = document.createElement('div');
      card.className = 'card deployment';
      card.dataset.id = d.id;
      card.innerHTML = `<h3>${esc(d.function)}:${esc(d.alias)} v${d.from_version} &rarr; v${d.to_version}
          <span class="state"></span>
          <button class="danger" data-action="stop" data-id="${esc(d.id)}" data-function="${esc(d.function)}" data-alias="${esc(d.alias)}">Stop</button></h3>
        <p class="summary muted"></p><div class="plot"></div>`;
    }
    if (list.children[position] !== card) list.insertBefore(card, list.children[position] || null);
    const badge = card.querySelector('.state');
    badge.className = `state ${d.state}`;
    badge.textContent = d.state;
    const stop = card.querySelector('button[data-action="stop"]');
    if (stop && d.state !== 'InProgress') stop.remove();
    const rolledBack = d.state === 'RolledBack';
    card.querySelector('.summary').innerHTML = `Now ${percent(d.weight)} of the traffic; ${d.errors} error(s) in ${d.invocations} invocation(s)${d.reason ? ` &mdash; <span class="${rolledBack ? 'error' : ''}">${esc(d.reason)}</span>` : ''}.`;
    const s = d.series;
    const alarm = d.alarm ? d.alarm.error_rate : null;
    const markers = (d.history || []).map((step) => ({
      at: step.at_ms,
      label: `${step.event} (${percent(step.weight)})`,
      kind: step.event.startsWith('rolled back') ? 'rollback' : step.event === 'completed' ? 'completed' : 'step',
    }));
    const series = [
      { name: `v${d.to_version} share of traffic`, values: s.weight, color: COLORS[1] },
      { name: 'error rate of the new version', values: s.error_rate, color: COLORS[3] },
    ];
    if (alarm !== null) series.push({ name: `alarm (${percent(alarm)})`, values: s.t.map(() => alarm), color: COLORS[3], dashed: true });
    card.querySelector('.plot').innerHTML = legend(series) + chart({ t: s.t, series, yMax: 1, format: percent, markers, width: 760, height: 220, cls: 'deployment-chart', attrs: `data-id="${esc(d.id)}" data-state="${esc(d.state)}" data-points="${s.t.length}"` });
  });
}

function renderMetrics() {
  const classes = ['2xx', '3xx', '4xx', '5xx'];
  const requests = classes.map((c, i) => ({ name: c, values: state.requests[c] || [], color: COLORS[i] }));
  $('request-chart').innerHTML = legend(requests) + chart({ t: state.t, series: requests, format: perSecond, width: 760 });
  $('function-metrics').innerHTML = Object.entries(state.functions).map(([name, f]) => {
    const calls = [{ name: 'invocations', values: f.invocations, color: COLORS[0] }, { name: 'throttles', values: f.throttles, color: COLORS[2] }];
    const errors = Object.entries(f.errors).map(([cls, values], i) => ({ name: cls, values, color: COLORS[(i + 3) % COLORS.length] }));
    const durations = [
      { name: 'p50', values: f.p50_ms, color: COLORS[0] },
      { name: 'p90', values: f.p90_ms, color: COLORS[2] },
      { name: 'p99', values: f.p99_ms, color: COLORS[3] },
    ];
    return `<div class="card function-metrics" data-function="${esc(name)}"><h3>${esc(name)}</h3><div class="charts">
      <div>${legend(calls)}${chart({ t: state.t, series: calls, format: perSecond, width: 360, height: 150 })}</div>
      <div>${legend(errors.length ? errors : [{ name: 'errors: none', color: '#ccc' }])}${chart({ t: state.t, series: errors, format: perSecond, width: 360, height: 150 })}</div>
      <div>${legend(durations)}${chart({ t: state.t, series: durations, format: ms, width: 360, height: 150 })}</div>
    </div></div>`;
  }).join('') || '<p class="muted">No function has run in the last minutes.</p>';
}

function renderCache() {
  $('cache-tiers').innerHTML = `<table><tr><th>Tier</th><th>Objects</th><th>Bytes</th></tr>${state.cache.tiers
    .map((t) => `<tr><td>${esc(t.tier)}</td><td>${t.objects}</td><td>${bytes(t.bytes)}</td></tr>`).join('')}</table>`;
  // The sites to purge, kept as chosen across refreshes.
  const select = $('purge-distribution');
  const chosen = select.value;
  const options = state.distributions
    .map((d) => `<option value="${esc(d.name)}">${d.name ? esc(d.name) : 'top-level behaviors'} (${esc(d.domains.join(', ') || 'every other host')})</option>`)
    .join('');
  if (select.dataset.options !== options) {
    select.innerHTML = options;
    select.dataset.options = options;
    if (state.distributions.some((d) => d.name === chosen)) select.value = chosen;
  }
  const hits = [{ name: 'hit ratio', values: state.cache.hit_ratio, color: COLORS[1] }];
  $('hit-chart').innerHTML = legend(hits) + chart({ t: state.t, series: hits, yMax: 1, format: percent, width: 760 });
}

function render() {
  $('node').textContent = `node ${state.node}`;
  $('updated').textContent = `updated ${new Date(state.now_ms).toLocaleTimeString()}`;
  if (tab === 'functions') renderFunctions();
  if (tab === 'deployments') renderDeployments();
  if (tab === 'metrics') renderMetrics();
  if (tab === 'cache') renderCache();
}

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', () => logout());
  $('deploy-form').addEventListener('submit', startDeployment);
  $('purge-form').addEventListener('submit', purge);
  $('deploy-strategy').addEventListener('change', () => {
    const custom = ['canary', 'linear'].includes($('deploy-strategy').value);
    $('deploy-percent').disabled = !custom;
    $('deploy-interval').disabled = !custom;
  });
  for (const button of document.querySelectorAll('#tabs button')) button.addEventListener('click', () => show(button.dataset.tab));
  document.body.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const { action, function: name, alias, id } = button.dataset;
    if (action === 'publish') publish(name);
    if (action === 'move') moveAlias(name, alias);
    if (action === 'stop') stopDeployment(id, name, alias);
  });
  if (token()) start();
});
