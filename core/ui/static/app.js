// The ujr status page. Plain browser JavaScript, no build step. Every piece of data is put in the
// DOM with textContent / createElement (never innerHTML), so run inputs, results, errors and log
// lines render as text whatever they hold.
/* global document, window, location, fetch, EventSource */
'use strict';

(function () {
  const view = document.getElementById('view');
  const live = document.getElementById('live');
  const notice = document.getElementById('notice');
  const csrfMeta = document.querySelector('meta[name="ujr-csrf"]');
  const csrf = csrfMeta ? csrfMeta.getAttribute('content') || '' : '';
  const whereMeta = document.querySelector('meta[name="ujr-where"]');
  // `local`, or `stack "<name>"` when the page is served over a deployed stack (ujr ui --stack).
  const where = whereMeta ? whereMeta.getAttribute('content') || 'local' : 'local';
  const onStack = where !== 'local';
  const whereEl = document.getElementById('where');
  if (whereEl && onStack) whereEl.textContent = where;
  if (onStack) document.title = `ujr · ${where}`;
  const SVG = 'http://www.w3.org/2000/svg';

  /** Shared UI state that survives re-renders. */
  const state = { logLevel: '', rendering: false, again: false, lastSnapshot: '' };

  // ---- DOM helpers -----------------------------------------------------------------------------

  /** Creates an element; strings and numbers among children become text nodes. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = String(value);
      else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key === 'value' || key === 'max' || key === 'disabled' || key === 'selected' || key === 'hidden') el[key] = value;
      else el.setAttribute(key, String(value));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      el.appendChild(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
    }
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
    for (const child of children) {
      if (typeof child === 'string') el.appendChild(document.createTextNode(child));
      else if (child) el.appendChild(child);
    }
    return el;
  }

  function link(href, text) {
    return h('a', { href }, text);
  }

  // ---- formatting --------------------------------------------------------------------------------

  function time(ms) {
    if (ms === undefined || ms === null) return '–';
    return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  function ago(ms) {
    if (ms === undefined || ms === null) return '';
    const s = Math.round((Date.now() - ms) / 1000);
    if (s < 5) return 'just now';
    if (s < 90) return `${s}s ago`;
    if (s < 5400) return `${Math.round(s / 60)}m ago`;
    if (s < 129600) return `${Math.round(s / 3600)}h ago`;
    return `${Math.round(s / 86400)}d ago`;
  }

  function duration(ms) {
    if (ms === undefined || ms === null || !Number.isFinite(ms)) return '–';
    if (ms < 1000) return `${Math.round(ms)}ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1)}s`;
    if (ms < 3600000) return `${Math.floor(ms / 60000)}m${Math.round((ms % 60000) / 1000)}s`;
    return `${Math.floor(ms / 3600000)}h${Math.round((ms % 3600000) / 60000)}m`;
  }

  function runDuration(run) {
    if (!run.startedAt) return '–';
    return duration((run.endedAt || Date.now()) - run.startedAt);
  }

  function json(value) {
    return value === undefined ? '' : JSON.stringify(value, null, 2);
  }

  function badge(text) {
    return h('span', { class: `badge ${String(text).replace(/\s+/g, '-')}`, text });
  }

  function stateTag(text) {
    return h('span', { class: `state ${text}`, text });
  }

  function progressEl(run) {
    const p = run.progress;
    const bar = h('progress', { dataset: { runId: run.id } });
    if (p && p.total) {
      bar.max = p.total;
      bar.value = Math.min(p.current, p.total);
    } else if (p) {
      bar.removeAttribute('value');
    }
    const text = p
      ? `${p.current}${p.total !== undefined && p.total !== null ? `/${p.total}` : ''}${p.total ? ` (${Math.round((100 * p.current) / p.total)}%)` : ''}${p.message ? ` ${p.message}` : ''}`
      : run.status;
    return [bar, h('span', { class: 'progress-text', text })];
  }

  // ---- API -----------------------------------------------------------------------------------------

  class ApiError extends Error {}

  async function api(path) {
    const res = await fetch(path, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new ApiError(body.error || `${res.status} ${res.statusText}`);
    return body;
  }

  async function post(path, body) {
    const res = await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-UJR-CSRF': csrf, Accept: 'application/json' },
      body: JSON.stringify(body || {}),
    });
    const out = await res.json().catch(() => ({}));
    if (!res.ok) throw new ApiError(out.error || `${res.status} ${res.statusText}`);
    return out;
  }

  function showNotice(text, isError) {
    notice.textContent = text;
    notice.className = isError ? 'notice error' : 'notice';
    notice.hidden = !text;
  }

  function actionButton(label, cls, action) {
    const button = h('button', { class: cls, text: label, type: 'button' });
    button.addEventListener('click', () => {
      button.disabled = true;
      action()
        .then((message) => {
          showNotice(message || '', false);
          return refresh();
        })
        .catch((error) => showNotice(error.message, true))
        .finally(() => {
          button.disabled = false;
        });
    });
    return button;
  }

  function instanceActions(instance) {
    const id = encodeURIComponent(instance.id);
    return h(
      'span',
      { class: 'actions' },
      actionButton('Run now', 'primary run-now', async () => {
        const out = await post(`/api/instances/${id}/run`, {});
        return typeof out.message === 'string' ? out.message : `Asked for a run of ${instance.id}; a running "ujr run" takes it within a second.`;
      }),
      instance.enabled
        ? actionButton('Disable', 'disable', async () => {
            await post(`/api/instances/${id}/disable`, {});
            return `${instance.id} disabled.`;
          })
        : actionButton('Enable', 'enable', async () => {
            await post(`/api/instances/${id}/enable`, {});
            return `${instance.id} enabled.`;
          }),
    );
  }

  // ---- views ---------------------------------------------------------------------------------------

  function runCell(run) {
    if (!run) return h('span', { class: 'muted', text: 'never run' });
    return h(
      'span',
      {},
      badge(run.status),
      ' ',
      link(`#/runs/${encodeURIComponent(run.id)}`, run.task),
      h('span', { class: 'muted', text: ` ${ago(run.endedAt || run.startedAt || run.queuedAt)}` }),
    );
  }

  function runningCell(runs) {
    if (runs.length === 0) return h('span', { class: 'muted', text: '–' });
    return runs.map((run) =>
      h('div', { class: 'run-line' }, link(`#/runs/${encodeURIComponent(run.id)}`, run.task), progressEl(run)),
    );
  }

  function runsTable(runs, withInstance) {
    if (runs.length === 0) return h('p', { class: 'muted', text: 'No runs yet.' });
    return h(
      'table',
      { class: 'runs' },
      h('thead', {}, h('tr', {}, ['Run', withInstance ? 'Instance' : null, 'Task', 'Status', 'Attempt', 'Queued', 'Duration', 'Detail'].filter(Boolean).map((t) => h('th', { text: t })))),
      h(
        'tbody',
        {},
        runs.map((run) =>
          h(
            'tr',
            { dataset: { runId: run.id } },
            h('td', { class: 'mono', title: run.id }, link(`#/runs/${encodeURIComponent(run.id)}`, run.id.length > 12 ? `…${run.id.slice(-10)}` : run.id)),
            withInstance ? h('td', {}, link(`#/instances/${encodeURIComponent(run.instanceId)}`, run.instanceId)) : null,
            h('td', { text: run.task }),
            h('td', {}, badge(run.status)),
            h('td', { text: `${run.attempt}/${run.maxAttempts}` }),
            h('td', { text: time(run.queuedAt) }),
            h('td', { text: runDuration(run) }),
            h('td', {}, run.error ? h('span', { class: 'muted', text: `${run.error.name}: ${run.error.message}` }) : run.progress && !run.endedAt ? h('span', { class: 'run-line' }, progressEl(run)) : ''),
          ),
        ),
      ),
    );
  }

  async function renderInstances() {
    const [data, recent] = await Promise.all([api('/api/instances'), api('/api/runs?limit=15')]);
    const out = [h('h1', { text: 'Job instances' })];
    if (data.problems.length > 0) {
      out.push(h('div', { class: 'notice' }, h('strong', { text: onStack ? 'Problems in the instances table' : 'Problems in the instances file' }), h('ul', { class: 'problems' }, data.problems.map((p) => h('li', { text: p })))));
    }
    if (data.instances.length === 0) out.push(h('p', { class: 'muted', text: onStack ? 'No job instances in the instances table: deploy some with the stack.' : 'No job instances: add some to the instances file.' }));
    else {
      out.push(
        h(
          'table',
          { class: 'instances' },
          h('thead', {}, h('tr', {}, ['Instance', 'Status', 'Schedule', 'Last run', 'Running', ''].map((t) => h('th', { text: t })))),
          h(
            'tbody',
            {},
            data.instances.map((i) =>
              h(
                'tr',
                { dataset: { instance: i.id } },
                h(
                  'td',
                  {},
                  link(`#/instances/${encodeURIComponent(i.id)}`, i.id),
                  h('div', { class: 'muted', text: i.job }),
                  i.planError ? h('div', { class: 'plan-error', text: `plan error: ${i.planError.message}` }) : null,
                ),
                h('td', { class: 'nowrap' }, badge(i.badge), ' ', stateTag(i.state)),
                h('td', { class: 'mono nowrap', text: i.schedule }),
                h('td', {}, runCell(i.lastRun)),
                h('td', {}, runningCell(i.running)),
                h('td', {}, instanceActions(i)),
              ),
            ),
          ),
        ),
      );
    }
    out.push(h('h2', { text: 'Recent runs' }), runsTable(recent.runs, true));
    return out;
  }

  function hourlyChart(hourly) {
    const width = 720;
    const height = 160;
    const pad = { left: 30, right: 8, top: 10, bottom: 22 };
    const max = Math.max(1, ...hourly.map((b) => b.succeeded + b.failed));
    const slot = (width - pad.left - pad.right) / hourly.length;
    const scale = (n) => ((height - pad.top - pad.bottom) * n) / max;
    const base = height - pad.bottom;
    const g = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'runs per hour, last 48 hours', class: 'hourly' });
    g.appendChild(svg('line', { x1: pad.left, y1: base, x2: width - pad.right, y2: base, stroke: '#c7cdd6' }));
    g.appendChild(svg('text', { x: pad.left - 6, y: pad.top + 8, 'text-anchor': 'end', 'font-size': 10, fill: '#6b7686' }, String(max)));
    g.appendChild(svg('text', { x: pad.left - 6, y: base, 'text-anchor': 'end', 'font-size': 10, fill: '#6b7686' }, '0'));
    hourly.forEach((b, i) => {
      const x = pad.left + i * slot + 1;
      const w = Math.max(1, slot - 2);
      const ok = scale(b.succeeded);
      const bad = scale(b.failed);
      const title = `${time(b.hour).slice(0, 13)}h: ${b.succeeded} succeeded, ${b.failed} failed`;
      if (b.succeeded > 0) g.appendChild(svg('rect', { x, y: base - ok, width: w, height: ok, fill: '#1f8a4c', class: 'bar-ok' }, svg('title', {}, title)));
      if (b.failed > 0) g.appendChild(svg('rect', { x, y: base - ok - bad, width: w, height: bad, fill: '#c62f2f', class: 'bar-failed' }, svg('title', {}, title)));
      if (i % 12 === 0) g.appendChild(svg('text', { x, y: height - 6, 'font-size': 10, fill: '#6b7686' }, `${time(b.hour).slice(5, 13)}h`));
    });
    return h('div', { class: 'chart card' }, g, h('div', { class: 'legend' }, 'Runs per hour, last 48 h (UTC):', h('span', { class: 'swatch ok' }), 'succeeded', h('span', { class: 'swatch failed' }), 'failed'));
  }

  function durationChart(points) {
    const width = 720;
    const height = 160;
    const pad = { left: 48, right: 8, top: 10, bottom: 22 };
    const g = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'durations of recent runs', class: 'durations' });
    if (points.length === 0) {
      g.appendChild(svg('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', 'font-size': 12, fill: '#6b7686' }, 'no ended runs yet'));
    } else {
      const max = Math.max(1, ...points.map((p) => p.durationMs));
      const base = height - pad.bottom;
      const slot = (width - pad.left - pad.right) / Math.max(points.length, 20);
      g.appendChild(svg('line', { x1: pad.left, y1: base, x2: width - pad.right, y2: base, stroke: '#c7cdd6' }));
      g.appendChild(svg('text', { x: pad.left - 6, y: pad.top + 8, 'text-anchor': 'end', 'font-size': 10, fill: '#6b7686' }, duration(max)));
      g.appendChild(svg('text', { x: pad.left - 6, y: base, 'text-anchor': 'end', 'font-size': 10, fill: '#6b7686' }, '0'));
      points.forEach((p, i) => {
        const bh = Math.max(1, ((height - pad.top - pad.bottom) * p.durationMs) / max);
        const fill = p.status === 'failed' ? '#c62f2f' : p.status === 'succeeded' ? '#2563c9' : '#8a8f98';
        g.appendChild(
          svg('rect', { x: pad.left + i * slot + 1, y: base - bh, width: Math.max(1, slot - 2), height: bh, fill }, svg('title', {}, `${p.task} ${p.status} ${duration(p.durationMs)} at ${time(p.endedAt)}`)),
        );
      });
    }
    return h('div', { class: 'chart card' }, g, h('div', { class: 'legend', text: `Durations of the last ${points.length} ended runs (oldest left; failed in red)` }));
  }

  async function renderInstance(id) {
    const i = await api(`/api/instances/${encodeURIComponent(id)}`);
    const out = [
      h('div', { class: 'sub' }, link('#/', '← instances')),
      h('h1', { text: i.id }),
      h('div', { class: 'sub' }, badge(i.badge), ' ', stateTag(i.state), ' ', `job type ${i.job} · schedule `, h('span', { class: 'mono', text: i.schedule }), i.concurrency ? ` · concurrency ${i.concurrency}` : ''),
      h('div', { class: 'toolbar' }, instanceActions(i)),
    ];
    if (i.planError) out.push(h('div', { class: 'notice error' }, `Last plan failed ${ago(i.planError.at)}: ${i.planError.name}: ${i.planError.message}`));
    if (i.retiredAt) out.push(h('div', { class: 'notice' }, `Done ${ago(i.retiredAt)}${i.retiredReason ? `: ${i.retiredReason}` : ''}. Enable it to plan it again.`));
    if (i.running.length > 0) out.push(h('h2', { text: 'Running now' }), h('div', { class: 'card' }, runningCell(i.running)));
    out.push(
      h('div', { class: 'grid' }, h('div', {}, h('h2', { text: 'Runs per hour' }), hourlyChart(i.hourly)), h('div', {}, h('h2', { text: 'Durations' }), durationChart(i.durations))),
      h('h2', { text: 'Tasks' }),
      h(
        'table',
        { class: 'tasks' },
        h('thead', {}, h('tr', {}, ['Task', 'Last run', 'Duration', 'Detail'].map((t) => h('th', { text: t })))),
        h(
          'tbody',
          {},
          i.tasks.map((t) =>
            h(
              'tr',
              {},
              h('td', { class: 'mono', text: t.task }),
              h('td', {}, runCell(t.lastRun)),
              h('td', { text: t.lastRun ? runDuration(t.lastRun) : '–' }),
              h('td', { class: 'muted', text: t.lastRun && t.lastRun.error ? `${t.lastRun.error.name}: ${t.lastRun.error.message}` : '' }),
            ),
          ),
        ),
      ),
      h('h2', { text: 'Params' }),
      h('pre', { class: 'params', text: json(i.params) }),
      h('h2', { text: 'Recent runs' }),
      runsTable(i.recentRuns.map((r) => Object.assign({ instanceId: i.id }, r)), false),
    );
    return out;
  }

  async function renderRun(id) {
    const path = `/api/runs/${encodeURIComponent(id)}`;
    const level = state.logLevel;
    const [run, logs] = await Promise.all([api(path), api(`${path}/logs${level ? `?level=${encodeURIComponent(level)}` : ''}`)]);
    const facts = [
      ['Instance', link(`#/instances/${encodeURIComponent(run.instanceId)}`, run.instanceId)],
      ['Job type', run.jobType],
      ['Status', badge(run.status)],
      ['Attempt', run.kind === 'continuous' ? String(run.attempt) : `${run.attempt} of ${run.maxAttempts}`],
      ['Origin', run.origin],
      ['Kind', run.kind],
      ['Queued', time(run.queuedAt)],
      ['Started', time(run.startedAt)],
      ['Ended', time(run.endedAt)],
      ['Duration', runDuration(run)],
      ['Runner', run.runner],
      ['Signature', h('span', { class: 'mono', text: run.signature })],
      ['Fencing token', String(run.fencingToken)],
    ];
    const out = [
      h('div', { class: 'sub' }, link(`#/instances/${encodeURIComponent(run.instanceId)}`, `← ${run.instanceId}`)),
      h('h1', {}, `${run.task} `, h('span', { class: 'muted', text: `· ${run.instanceId} ` }), badge(run.status)),
      h('div', { class: 'sub mono', text: run.id }),
      h('div', { class: 'card' }, h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]))),
    ];
    if (run.progress) out.push(h('h2', { text: 'Progress' }), h('div', { class: 'card run-line' }, progressEl(run)));
    if (run.error) {
      out.push(
        h('h2', { text: 'Error' }),
        h('pre', { class: 'stack', text: run.error.stack || `${run.error.name}: ${run.error.message}` }),
      );
    }
    out.push(h('h2', { text: 'Input' }), h('pre', { class: 'input', text: json(run.input) }));
    if (run.result !== undefined) out.push(h('h2', { text: 'Result' }), h('pre', { class: 'result', text: json(run.result) }));
    const select = h(
      'select',
      { class: 'level-filter', 'aria-label': 'lowest level shown' },
      [
        ['', 'all levels'],
        ['info', 'info and above'],
        ['warn', 'warnings and errors'],
        ['error', 'errors only'],
      ].map(([value, label]) => h('option', { value, text: label, selected: value === level })),
    );
    select.addEventListener('change', () => {
      state.logLevel = select.value;
      void refresh();
    });
    out.push(h('h2', { text: `Log (${logs.lines.length} line${logs.lines.length === 1 ? '' : 's'})` }), h('div', { class: 'toolbar' }, select));
    if (logs.lines.length === 0) out.push(h('p', { class: 'muted', text: 'No log lines.' }));
    else {
      out.push(
        h(
          'table',
          { class: 'logs' },
          h('tbody', {}, logs.lines.map((line) => h('tr', { dataset: { level: line.level } }, h('td', { class: 'mono muted', text: time(line.at) }), h('td', {}, h('span', { class: `log-level ${line.level}`, text: line.level })), h('td', { class: 'mono', text: line.message })))),
        ),
      );
    }
    return out;
  }

  // ---- routing and live updates ------------------------------------------------------------------

  function route() {
    const hash = location.hash.replace(/^#/, '') || '/';
    let m = /^\/instances\/([^/]+)$/.exec(hash);
    if (m) return () => renderInstance(decodeURIComponent(m[1]));
    m = /^\/runs\/([^/]+)$/.exec(hash);
    if (m) return () => renderRun(decodeURIComponent(m[1]));
    return renderInstances;
  }

  /** Renders the current view; calls while one renders are coalesced into one more. */
  async function refresh() {
    if (state.rendering) {
      state.again = true;
      return;
    }
    state.rendering = true;
    try {
      const render = route();
      const nodes = await render();
      const scroll = window.scrollY;
      view.replaceChildren(...nodes.flat(Infinity).filter(Boolean));
      window.scrollTo(0, scroll);
      document.body.dataset.loaded = location.hash || '#/';
    } catch (error) {
      view.replaceChildren(h('div', { class: 'notice error', text: error.message }), h('p', {}, link('#/', '← instances')));
    } finally {
      state.rendering = false;
      if (state.again) {
        state.again = false;
        void refresh();
      }
    }
  }

  function connect() {
    const events = new EventSource('/api/events');
    events.addEventListener('open', () => {
      live.textContent = 'live';
      live.className = 'live on';
    });
    events.addEventListener('error', () => {
      live.textContent = 'reconnecting…';
      live.className = 'live off';
    });
    events.addEventListener('snapshot', (event) => {
      live.textContent = 'live';
      live.className = 'live on';
      if (event.data !== state.lastSnapshot) {
        state.lastSnapshot = event.data;
        void refresh();
      }
    });
  }

  window.addEventListener('hashchange', () => {
    showNotice('', false);
    window.scrollTo(0, 0);
    void refresh();
  });
  void refresh();
  connect();
})();
