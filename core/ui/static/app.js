// The ujr status page. Plain browser JavaScript, no build step. Every piece of data is put in the
// DOM with textContent / createElement (never innerHTML), so run inputs, results, errors and log
// lines render as text whatever they hold.
/* global document, window, location, fetch, EventSource, URLSearchParams, setTimeout */
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
  const state = { logLevel: '', rendering: false, again: false, lastSnapshot: '', timelineHours: 24, deferred: false, edited: false };

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

  // Times in the viewer's time zone and locale; the exact instant is in each <time>'s datetime.
  const thisYear = new Date().getFullYear();
  const formats = {
    short: new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' }),
    year: new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' }),
    hour: new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' }),
    dayHour: new Intl.DateTimeFormat(undefined, { weekday: 'short', hour: '2-digit', minute: '2-digit' }),
    full: new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'long' }),
  };
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';

  function time(ms) {
    if (ms === undefined || ms === null) return '–';
    const date = new Date(ms);
    return (date.getFullYear() === thisYear ? formats.short : formats.year).format(date);
  }

  /** A <time> element: the local time as text, the instant as its datetime, the full date as its title. */
  function timeEl(ms, cls) {
    if (ms === undefined || ms === null) return h('span', { class: 'muted', text: '–' });
    const date = new Date(ms);
    return h('time', { datetime: date.toISOString(), title: `${formats.full.format(date)}`, class: cls, text: time(ms) });
  }

  /** ISO 8601 instants inside a text (a task's progress message), shown in the viewer's time zone. */
  const ISO_INSTANT = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})/g;
  function localizeInstants(text) {
    return String(text).replace(ISO_INSTANT, (iso) => {
      const ms = Date.parse(iso);
      return Number.isNaN(ms) ? iso : time(ms);
    });
  }

  /** "2/3" for a batch attempt; a continuous task restarts without limit, so just its attempt number. */
  function attempts(run) {
    if (run.kind === 'continuous' || !(run.maxAttempts > 0)) return `#${run.attempt}`;
    return `${run.attempt}/${run.maxAttempts}`;
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
      ? `${p.current}${p.total !== undefined && p.total !== null ? `/${p.total}` : ''}${p.total ? ` (${Math.round((100 * p.current) / p.total)}%)` : ''}${p.message ? ` ${localizeInstants(p.message)}` : ''}`
      : run.status;
    bar.setAttribute('aria-label', `progress of ${run.task || 'the run'}`);
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

  function runsTable(runs, withInstance, empty) {
    if (runs.length === 0) return h('p', { class: 'muted no-runs', text: empty || 'No runs yet.' });
    return h(
      'table',
      { class: 'runs' },
      h('thead', {}, h('tr', {}, ['Run', withInstance ? 'Instance' : null, 'Task', 'Status', 'Attempt', 'Queued', 'Duration', 'Detail'].filter(Boolean).map((t) => h('th', { scope: 'col', text: t })))),
      h(
        'tbody',
        {},
        runs.map((run) =>
          h(
            'tr',
            { dataset: { runId: run.id } },
            h('td', { class: 'mono id' }, link(`#/runs/${encodeURIComponent(run.id)}`, run.id)),
            withInstance ? h('td', { class: 'nowrap' }, link(`#/instances/${encodeURIComponent(run.instanceId)}`, run.instanceId)) : null,
            h('td', { class: 'nowrap', text: run.task }),
            h('td', {}, badge(run.status)),
            h('td', { class: 'nowrap attempt', text: attempts(run) }),
            h('td', { class: 'when' }, timeEl(run.queuedAt)),
            h('td', { class: 'nowrap', text: runDuration(run) }),
            h('td', { class: 'detail' }, run.error ? h('span', { class: 'muted', text: `${run.error.name}: ${run.error.message}` }) : run.progress && !run.endedAt ? h('span', { class: 'run-line' }, progressEl(run)) : ''),
          ),
        ),
      ),
    );
  }

  /** A shared limit's rule: `10 per 1s, burst 1` and/or `3 at once`. */
  function limitRule(limit) {
    const parts = [];
    if (limit.rate) parts.push(`${limit.rate.count} per ${duration(limit.rate.perMs)}, burst ${limit.rate.burst}`);
    if (limit.concurrency !== undefined) parts.push(`${limit.concurrency} at once`);
    return parts.join('; ');
  }

  function limitsTable(limits) {
    return h(
      'table',
      { class: 'limits' },
      h('thead', {}, h('tr', {}, ['Limit', 'Rule', 'Tokens', 'In use', 'Waiting', 'Backing off until', 'Granted', 'Refused', 'Throttled'].map((t) => h('th', { scope: 'col', text: t })))),
      h(
        'tbody',
        {},
        limits.map((limit) =>
          h(
            'tr',
            { dataset: { limit: `${limit.name}#${limit.key}` } },
            h('td', {}, h('span', { class: 'mono', text: limit.name }), limit.key === '' ? null : h('div', { class: 'muted mono', text: `key ${limit.key}` })),
            h('td', { text: limitRule(limit) }),
            h('td', { class: 'num', text: limit.tokens === undefined ? '–' : limit.tokens.toFixed(1) }),
            h('td', { class: 'num', text: limit.concurrency === undefined ? '–' : `${limit.held}/${limit.concurrency}` }),
            h('td', { class: 'num', text: String(limit.waiting) }),
            h('td', {}, limit.blockedUntil === undefined ? '' : timeEl(limit.blockedUntil)),
            h('td', { class: 'num', text: String(limit.granted) }),
            h('td', { class: 'num', text: String(limit.refused) }),
            h('td', { class: 'num', text: limit.throttledMs > 0 ? duration(limit.throttledMs) : '–' }),
          ),
        ),
      ),
    );
  }

  async function renderInstances() {
    const [data, recent, shared] = await Promise.all([api('/api/instances'), api('/api/runs?limit=15'), api('/api/limits')]);
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
          h('thead', {}, h('tr', {}, ['Instance', 'Status', 'Schedule', 'Last run', 'Running', 'Actions'].map((t) => h('th', { scope: 'col', text: t })))),
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
    if (shared.limits.length > 0) out.push(h('h2', { text: 'Shared limits' }), limitsTable(shared.limits));
    out.push(h('h2', { text: 'Recent runs' }), runsTable(recent.runs, true));
    return out;
  }

  const OUTCOMES = ['succeeded', 'failed', 'interrupted', 'cancelled', 'skipped'];

  function hourlyChart(hourly) {
    const width = 720;
    const height = 160;
    const pad = { left: 30, right: 8, top: 10, bottom: 22 };
    const total = (b) => OUTCOMES.reduce((n, o) => n + (b[o] || 0), 0);
    const max = Math.max(1, ...hourly.map(total));
    const slot = (width - pad.left - pad.right) / hourly.length;
    const scale = (n) => ((height - pad.top - pad.bottom) * n) / max;
    const base = height - pad.bottom;
    const all = hourly.reduce((n, b) => n + total(b), 0);
    const g = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `runs per hour, last 48 hours: ${all} ended`, class: 'hourly' });
    g.appendChild(svg('line', { x1: pad.left, y1: base, x2: width - pad.right, y2: base, class: 'baseline' }));
    g.appendChild(svg('text', { x: pad.left - 6, y: pad.top + 8, 'text-anchor': 'end', class: 'axis' }, String(max)));
    g.appendChild(svg('text', { x: pad.left - 6, y: base, 'text-anchor': 'end', class: 'axis' }, '0'));
    hourly.forEach((b, i) => {
      const x = pad.left + i * slot + 1;
      const w = Math.max(1, slot - 2);
      const title = `${formats.dayHour.format(new Date(b.hour))}: ${OUTCOMES.filter((o) => b[o]).map((o) => `${b[o]} ${o}`).join(', ') || 'none'}`;
      let y = base;
      for (const outcome of OUTCOMES) {
        const n = b[outcome] || 0;
        if (n === 0) continue;
        const bh = scale(n);
        y -= bh;
        g.appendChild(svg('rect', { x, y, width: w, height: bh, class: `bar ${outcome}`, 'data-count': n }, svg('title', {}, title)));
      }
      if (i % 12 === 0) g.appendChild(svg('text', { x, y: height - 6, class: 'axis' }, formats.dayHour.format(new Date(b.hour))));
    });
    return h(
      'div',
      { class: 'chart card' },
      g,
      h('div', { class: 'legend' }, `Runs per hour by how they ended, last 48 h (${zone}):`, OUTCOMES.map((o) => [h('span', { class: `swatch ${o}` }), o])),
    );
  }

  function durationChart(points) {
    const width = 720;
    const height = 160;
    const pad = { left: 48, right: 8, top: 10, bottom: 22 };
    const g = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `durations of the last ${points.length} ended runs`, class: 'durations' });
    if (points.length === 0) {
      g.appendChild(svg('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'axis' }, 'no ended runs yet'));
    } else {
      const max = Math.max(1, ...points.map((p) => p.durationMs));
      const base = height - pad.bottom;
      const slot = (width - pad.left - pad.right) / Math.max(points.length, 20);
      g.appendChild(svg('line', { x1: pad.left, y1: base, x2: width - pad.right, y2: base, class: 'baseline' }));
      g.appendChild(svg('text', { x: pad.left - 6, y: pad.top + 8, 'text-anchor': 'end', class: 'axis' }, duration(max)));
      g.appendChild(svg('text', { x: pad.left - 6, y: base, 'text-anchor': 'end', class: 'axis' }, '0'));
      points.forEach((p, i) => {
        const bh = Math.max(1, ((height - pad.top - pad.bottom) * p.durationMs) / max);
        g.appendChild(
          svg('rect', { x: pad.left + i * slot + 1, y: base - bh, width: Math.max(1, slot - 2), height: bh, class: `bar ${p.status}` }, svg('title', {}, `${p.task} ${p.status} ${duration(p.durationMs)}, ended ${time(p.endedAt)}`)),
        );
      });
    }
    return h('div', { class: 'chart card' }, g, h('div', { class: 'legend', text: `Durations of the last ${points.length} ended runs, oldest left, coloured by how they ended` }));
  }

  async function renderInstance(id) {
    const i = await api(`/api/instances/${encodeURIComponent(id)}`);
    const out = [
      h('div', { class: 'sub' }, link('#/', '← instances')),
      h('h1', { text: i.id }),
      h('div', { class: 'sub' }, badge(i.badge), ' ', stateTag(i.state), ' ', `job type ${i.job} · schedule `, h('span', { class: 'mono', text: i.schedule }), i.concurrency ? ` · concurrency ${i.concurrency}` : ''),
      h('div', { class: 'toolbar' }, instanceActions(i), runTaskButton(i)),
    ];
    if (i.planError) out.push(h('div', { class: 'notice error' }, `Last plan failed ${ago(i.planError.at)}: ${i.planError.name}: ${i.planError.message}`));
    if (i.retiredAt) out.push(h('div', { class: 'notice' }, `Done ${ago(i.retiredAt)}${i.retiredReason ? `: ${i.retiredReason}` : ''}. Enable it to plan it again.`));
    if (i.running.length > 0) out.push(h('h2', { text: 'Running now' }), h('div', { class: 'card' }, runningCell(i.running)));
    const timeline = await api(`/api/instances/${encodeURIComponent(id)}/timeline?hours=24`);
    out.push(h('h2', { id: 'timeline-title', text: 'Timeline' }), timelineView(timeline));
    out.push(
      h('div', { class: 'grid' }, h('div', {}, h('h2', { text: 'Runs per hour' }), hourlyChart(i.hourly)), h('div', {}, h('h2', { text: 'Durations' }), durationChart(i.durations))),
      h('h2', { text: 'Tasks' }),
      h(
        'table',
        { class: 'tasks' },
        h('thead', {}, h('tr', {}, ['Task', 'Last run', 'Duration', 'Detail'].map((t) => h('th', { scope: 'col', text: t })))),
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
      ['Attempt', run.kind === 'continuous' || !(run.maxAttempts > 0) ? `#${run.attempt}` : `${run.attempt} of ${run.maxAttempts}`],
      run.previousRunId ? ['Previous attempt', link(`#/runs/${encodeURIComponent(run.previousRunId)}`, run.previousRunId)] : null,
      run.nextRunId ? ['Next attempt', link(`#/runs/${encodeURIComponent(run.nextRunId)}`, run.nextRunId)] : null,
      ['Origin', run.origin],
      ['Kind', run.kind],
      ['Queued', timeEl(run.queuedAt)],
      ['Started', timeEl(run.startedAt)],
      ['Ended', timeEl(run.endedAt)],
      ['Duration', runDuration(run)],
      ['Runner', run.runner],
      ['Signature', h('span', { class: 'mono', text: run.signature })],
      ['Fencing token', String(run.fencingToken)],
    ];
    const out = [
      h('div', { class: 'sub' }, link(`#/instances/${encodeURIComponent(run.instanceId)}`, `← ${run.instanceId}`)),
      h('h1', {}, `${run.task} `, h('span', { class: 'muted', text: `· ${run.instanceId} ` }), badge(run.status)),
      h('div', { class: 'sub mono', text: run.id }),
      RETRYABLE.includes(run.status) ? h('div', { class: 'toolbar' }, retryButton(run)) : null,
      LIVE.includes(run.status) ? h('div', { class: 'toolbar' }, cancelButton(run)) : null,
      h('div', { class: 'card' }, h('dl', { class: 'facts' }, facts.filter(Boolean).map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]))),
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
          h('tbody', {}, logs.lines.map((line) => h('tr', { dataset: { level: line.level } }, h('td', { class: 'mono muted' }, timeEl(line.at)), h('td', {}, h('span', { class: `log-level ${line.level}`, text: line.level })), h('td', { class: 'mono', text: line.message })))),
        ),
      );
    }
    return out;
  }

  // ---- retry, run a task --------------------------------------------------------------------------

  const RETRYABLE = ['failed', 'interrupted', 'cancelled'];
  const LIVE = ['queued', 'running', 'retrying'];

  function cancelButton(run) {
    return actionButton('Cancel', 'danger cancel', async () => {
      if (!window.confirm(`Cancel ${run.task} of ${run.instanceId}? A running handler is aborted and the run is recorded cancelled.`)) return '';
      const out = await post(`/api/runs/${encodeURIComponent(run.id)}/cancel`, {});
      return typeof out.message === 'string' ? out.message : `Asked to cancel ${run.task} of ${run.instanceId}.`;
    });
  }

  function retryButton(run) {
    return actionButton('Retry with the same input', 'primary retry', async () => {
      await post(`/api/runs/${encodeURIComponent(run.id)}/retry`, {});
      return `Asked for ${run.task} of ${run.instanceId} again with the same input; a running "ujr run" takes it within a second.`;
    });
  }

  /** Checks `value` against a JSON Schema (the subset zod's toJSONSchema writes); returns the problems. */
  function checkSchema(schema, value, path, out) {
    const where = path || 'input';
    if (schema === undefined || schema === null || schema === true) return out;
    if (schema === false) return out.push(`${where}: not allowed`), out;
    const fits = (s) => checkSchema(s, value, path, []).length === 0;
    if (Array.isArray(schema.anyOf) && !schema.anyOf.some(fits)) out.push(`${where}: matches none of the allowed shapes`);
    if (Array.isArray(schema.oneOf) && schema.oneOf.filter(fits).length !== 1) out.push(`${where}: must match exactly one of the allowed shapes`);
    if (Array.isArray(schema.allOf)) for (const s of schema.allOf) checkSchema(s, value, path, out);
    if ('const' in schema && JSON.stringify(schema.const) !== JSON.stringify(value)) out.push(`${where}: must be ${JSON.stringify(schema.const)}`);
    if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
      out.push(`${where}: must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`);
    }
    if (schema.type !== undefined) {
      const types = Array.isArray(schema.type) ? schema.type : [schema.type];
      const typeOf = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
      const ok = types.some((t) => (t === 'integer' ? Number.isInteger(value) : t === typeOf(value)));
      if (!ok) return out.push(`${where}: must be ${types.map((t) => (t === 'integer' ? 'a whole number' : t)).join(' or ')}, not ${typeOf(value)}`), out;
    }
    if (typeof value === 'string') {
      if (schema.minLength !== undefined && value.length < schema.minLength) out.push(`${where}: at least ${schema.minLength} characters`);
      if (schema.maxLength !== undefined && value.length > schema.maxLength) out.push(`${where}: at most ${schema.maxLength} characters`);
      if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) out.push(`${where}: must match ${schema.pattern}`);
    }
    if (typeof value === 'number') {
      if (schema.minimum !== undefined && value < schema.minimum) out.push(`${where}: must be at least ${schema.minimum}`);
      if (schema.maximum !== undefined && value > schema.maximum) out.push(`${where}: must be at most ${schema.maximum}`);
      if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) out.push(`${where}: must be more than ${schema.exclusiveMinimum}`);
      if (schema.exclusiveMaximum !== undefined && value >= schema.exclusiveMaximum) out.push(`${where}: must be less than ${schema.exclusiveMaximum}`);
    }
    if (Array.isArray(value)) {
      if (schema.minItems !== undefined && value.length < schema.minItems) out.push(`${where}: at least ${schema.minItems} items`);
      if (schema.maxItems !== undefined && value.length > schema.maxItems) out.push(`${where}: at most ${schema.maxItems} items`);
      if (schema.items && typeof schema.items === 'object') value.forEach((v, i) => checkSchema(schema.items, v, `${where}[${i}]`, out));
    }
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const props = schema.properties || {};
      for (const key of schema.required || []) if (!(key in value)) out.push(`${where}.${key}: required`);
      for (const [key, v] of Object.entries(value)) {
        if (key in props) checkSchema(props[key], v, `${where}.${key}`, out);
        else if (schema.additionalProperties === false) out.push(`${where}: unknown key "${key}"`);
        else if (schema.additionalProperties && typeof schema.additionalProperties === 'object') checkSchema(schema.additionalProperties, v, `${where}.${key}`, out);
      }
    }
    return out;
  }

  /** "Run a task…": a dialog to pick a task and write its input, checked against the task's schema as you type. */
  function runTaskButton(instance) {
    const tasks = instance.tasks.map((t) => t.task);
    const button = h('button', { type: 'button', class: 'run-task', text: 'Run a task…', disabled: tasks.length === 0 });
    button.addEventListener('click', () => openRunDialog(instance, tasks));
    return button;
  }

  function openRunDialog(instance, tasks) {
    const schemas = instance.inputSchemas;
    const select = h('select', { id: 'run-task', name: 'task' }, tasks.map((t) => h('option', { value: t, text: t })));
    const input = h('textarea', { id: 'run-input', name: 'input', spellcheck: 'false', 'aria-describedby': 'run-problems run-schema-note' });
    input.value = '{}';
    const problems = h('ul', { id: 'run-problems', class: 'problems', 'aria-live': 'polite' });
    const note = h('p', { id: 'run-schema-note', class: 'muted' });
    const schemaView = h('pre', { class: 'schema' });
    const submit = h('button', { type: 'submit', class: 'primary', text: 'Run' });
    const cancel = h('button', { type: 'button', text: 'Close' });
    const dialog = h(
      'dialog',
      { class: 'run-dialog', 'aria-labelledby': 'run-title' },
      h(
        'form',
        { method: 'dialog' },
        h('h2', { id: 'run-title', text: `Run a task of ${instance.id}` }),
        h('label', { for: 'run-task', text: 'Task' }),
        select,
        h('label', { for: 'run-input', text: 'Input (JSON)' }),
        input,
        problems,
        note,
        h('details', {}, h('summary', { text: 'Input schema' }), schemaView),
        h('div', { class: 'buttons' }, cancel, submit),
      ),
    );
    const check = () => {
      const schema = schemas ? schemas[select.value] : undefined;
      note.textContent =
        schemas === undefined
          ? 'The job types are not known here: the input is checked when the task is planned.'
          : schema === null
            ? `Task "${select.value}" declares no input schema: any JSON object is sent as is.`
            : `Checked against task "${select.value}"'s input schema before it is sent.`;
      schemaView.textContent = schema ? JSON.stringify(schema, null, 2) : '(none)';
      let found = [];
      let value;
      try {
        value = JSON.parse(input.value);
      } catch (error) {
        found = [`not valid JSON: ${error.message}`];
      }
      if (found.length === 0) found = schema ? checkSchema(schema, value, '', []) : [];
      problems.replaceChildren(...found.map((p) => h('li', { text: p })));
      input.setAttribute('aria-invalid', found.length > 0 ? 'true' : 'false');
      submit.disabled = found.length > 0;
      return found.length === 0 ? value : undefined;
    };
    select.addEventListener('change', check);
    input.addEventListener('input', check);
    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (state.deferred) {
        state.deferred = false;
        liveRefresh();
      }
    });
    submit.addEventListener('click', (event) => {
      event.preventDefault();
      const value = check();
      if (value === undefined) return;
      submit.disabled = true;
      post(`/api/instances/${encodeURIComponent(instance.id)}/run`, { task: select.value, input: value })
        .then(() => {
          dialog.close();
          showNotice(`Asked for ${select.value} of ${instance.id}; a running "ujr run" takes it within a second.`, false);
          return refresh();
        })
        .catch((error) => {
          problems.replaceChildren(h('li', { text: error.message }));
          submit.disabled = false;
        });
    });
    document.body.appendChild(dialog);
    check();
    dialog.showModal();
  }

  // ---- instance timeline ---------------------------------------------------------------------------

  const ZOOMS = [
    [24, '24 h'],
    [6, '6 h'],
    [1, '1 h'],
  ];
  const ROW = 20;

  /** A Gantt strip: a lane per task, a bar per run from start to end (a thin bar while it waited), retries linked. */
  function timelineView(data) {
    const hours = state.timelineHours;
    const to = data.to;
    const from = to - hours * 3600000;
    const span = to - from;
    const pct = (ms) => `${(100 * (Math.min(Math.max(ms, from), to) - from)) / span}%`;
    const runs = data.runs.filter((r) => (r.endedAt || to) >= from && r.queuedAt <= to);
    const zoom = h(
      'div',
      { class: 'toolbar zoom', role: 'group', 'aria-label': 'timeline zoom' },
      h('span', { class: 'muted', text: 'Show the last' }),
      ZOOMS.map(([n, label]) => {
        const b = h('button', { type: 'button', text: label, 'aria-pressed': String(n === hours), dataset: { hours: String(n) } });
        b.addEventListener('click', () => {
          state.timelineHours = n;
          void refresh();
        });
        return b;
      }),
      h('span', { class: 'muted', text: `${runs.length} run${runs.length === 1 ? '' : 's'} · ${time(from)} – ${time(to)}${data.truncated ? ' · only the newest 2,000 runs read' : ''}` }),
    );
    if (runs.length === 0) return [zoom, h('p', { class: 'muted timeline-empty', text: `No runs in the last ${hours} h.` })];
    const lanes = new Map();
    for (const run of runs) {
      if (!lanes.has(run.task)) lanes.set(run.task, []);
      const rows = lanes.get(run.task);
      const start = run.startedAt || run.queuedAt;
      let row = rows.findIndex((end) => end < run.queuedAt);
      if (row < 0) row = rows.push(0) - 1;
      rows[row] = run.endedAt || to;
      run.row = row;
      run.start = start;
    }
    const laneTop = new Map();
    let top = 0;
    for (const [task, rows] of lanes) {
      laneTop.set(task, top);
      top += rows.length * ROW + 4;
    }
    const where = new Map();
    const strip = h('div', { class: 'timeline', role: 'group', 'aria-labelledby': 'timeline-title' });
    for (const [task, rows] of lanes) {
      const lane = h('div', { class: 'lane', dataset: { task } }, h('span', { class: 'lane-name mono', title: task, text: task }));
      lane.style.height = `${rows.length * ROW + 4}px`;
      for (const run of runs.filter((r) => r.task === task)) {
        const y = run.row * ROW + 3;
        if (run.startedAt && run.startedAt > run.queuedAt) {
          const wait = h('span', { class: 'tl-wait', 'aria-hidden': 'true' });
          wait.style.left = pct(run.queuedAt);
          wait.style.width = `calc(${pct(run.startedAt)} - ${pct(run.queuedAt)})`;
          wait.style.top = `${y + 5}px`;
          lane.appendChild(wait);
        }
        const end = run.endedAt || to;
        const label = `${task} ${run.status}, attempt ${run.kind === 'continuous' ? `#${run.attempt}` : run.attempt}, ${run.startedAt ? `started ${time(run.startedAt)}` : `queued ${time(run.queuedAt)}`}, ${run.endedAt ? `took ${duration(end - run.start)}` : 'still going'}`;
        const bar = h('a', { class: `tl-bar ${run.status}`, href: `#/runs/${encodeURIComponent(run.id)}`, 'aria-label': label, title: label, dataset: { runId: run.id } });
        bar.style.left = pct(run.start);
        bar.style.width = `calc(${pct(end)} - ${pct(run.start)})`;
        bar.style.top = `${y}px`;
        lane.appendChild(bar);
        where.set(run.id, { x0: (1000 * (Math.max(run.start, from) - from)) / span, x1: (1000 * (Math.min(end, to) - from)) / span, y: laneTop.get(task) + y + 7 });
      }
      strip.appendChild(lane);
    }
    // Retries linked: from each attempt's end to the start of the next attempt.
    const links = svg('svg', { class: 'links', viewBox: `0 0 1000 ${top}`, preserveAspectRatio: 'none', 'aria-hidden': 'true' });
    links.style.width = 'calc(100% - 142px)';
    links.style.height = `${top}px`;
    for (const run of runs) {
      const next = run.nextRunId && where.get(run.nextRunId);
      const self = where.get(run.id);
      if (!next || !self) continue;
      links.appendChild(svg('path', { d: `M${self.x1},${self.y} L${next.x0},${next.y}`, 'vector-effect': 'non-scaling-stroke', 'data-from': run.id, 'data-to': run.nextRunId }));
    }
    strip.appendChild(links);
    const axis = h('div', { class: 'axis-row', 'aria-hidden': 'true' });
    const step = hours >= 24 ? 4 : hours >= 6 ? 1 : 0.25;
    for (let t = Math.ceil(from / (step * 3600000)) * step * 3600000; t <= to; t += step * 3600000) {
      const tick = h('span', { class: 'tick', text: formats.hour.format(new Date(t)) });
      tick.style.left = pct(t);
      axis.appendChild(tick);
    }
    strip.appendChild(axis);
    return [zoom, strip, h('div', { class: 'legend' }, `Times in ${zone}. Dashed lines join a failed attempt to its retry.`, ['succeeded', 'failed', 'running', 'queued', 'retrying', 'interrupted', 'cancelled', 'skipped'].map((o) => [h('span', { class: `swatch ${o}` }), o]))];
  }

  // ---- runs explorer ---------------------------------------------------------------------------------

  /** The explorer's query, kept in the address (#/runs?instance=…&status=…&q=…&before=…). */
  function explorerQuery() {
    const hash = location.hash.replace(/^#/, '');
    const at = hash.indexOf('?');
    return new URLSearchParams(at < 0 ? '' : hash.slice(at + 1));
  }

  function goExplorer(params) {
    for (const [key, value] of [...params.entries()]) if (value === '') params.delete(key);
    const text = params.toString();
    location.hash = `#/runs${text ? `?${text}` : ''}`;
  }

  /** epoch ms → the value of an <input type="datetime-local"> in the viewer's time zone, and back. */
  function toLocalInput(ms) {
    if (!ms) return '';
    const d = new Date(Number(ms));
    const pad = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  function fromLocalInput(text) {
    if (!text) return '';
    const ms = new Date(text).getTime();
    return Number.isNaN(ms) ? '' : String(ms);
  }

  async function renderExplorer() {
    const query = explorerQuery();
    const [instances, result] = await Promise.all([api('/api/instances'), api(`/api/runs?${new URLSearchParams([...query.entries(), ['limit', '50']]).toString()}`)]);
    const field = (label, control) => h('label', {}, label, control);
    const instanceSelect = h('select', { name: 'instance' }, h('option', { value: '', text: 'any instance' }), instances.instances.map((i) => h('option', { value: i.id, text: i.id, selected: i.id === query.get('instance') })));
    const statusSelect = h(
      'select',
      { name: 'status' },
      h('option', { value: '', text: 'any status' }),
      ['succeeded', 'failed', 'interrupted', 'cancelled', 'skipped', 'running', 'queued', 'retrying'].map((s) => h('option', { value: s, text: s, selected: s === query.get('status') })),
    );
    const taskInput = h('input', { name: 'task', type: 'text', value: query.get('task') || '', placeholder: 'any task', size: 14 });
    const fromInput = h('input', { name: 'from', type: 'datetime-local', value: toLocalInput(query.get('from')) });
    const toInput = h('input', { name: 'to', type: 'datetime-local', value: toLocalInput(query.get('to')) });
    const search = h('input', { name: 'q', type: 'search', value: query.get('q') || '', placeholder: 'run id, signature, or text of the input' });
    const form = h(
      'form',
      { class: 'filters', role: 'search', 'aria-label': 'filter runs' },
      field('Instance', instanceSelect),
      field('Task', taskInput),
      field('Status', statusSelect),
      field(`Queued from (${zone})`, fromInput),
      field('Queued before', toInput),
      field('Search', search),
      h('button', { type: 'submit', class: 'primary', text: 'Show runs' }),
      h('button', { type: 'button', class: 'clear', text: 'Clear', onclick: () => goExplorer(new URLSearchParams()) }),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      goExplorer(
        new URLSearchParams([
          ['instance', instanceSelect.value],
          ['task', taskInput.value.trim()],
          ['status', statusSelect.value],
          ['from', fromLocalInput(fromInput.value)],
          ['to', fromLocalInput(toInput.value)],
          ['q', search.value.trim()],
        ]),
      );
    });
    const pageParams = (before) => {
      const next = new URLSearchParams(query);
      next.delete('before');
      next.delete('match');
      if (before) {
        next.set('before', before);
        if (result.match) next.set('match', result.match);
      }
      return next;
    };
    const pager = h(
      'nav',
      { class: 'pager', 'aria-label': 'pages of runs' },
      h('button', { type: 'button', class: 'newest', text: '« Newest', disabled: !query.get('before'), onclick: () => goExplorer(pageParams(undefined)) }),
      h('button', { type: 'button', class: 'older', text: 'Older ›', disabled: !result.next, onclick: () => goExplorer(pageParams(result.next)) }),
      h('span', { class: 'muted', text: `${result.runs.length} run${result.runs.length === 1 ? '' : 's'}${result.match ? `, matched by ${result.match === 'id' ? 'run id' : result.match}` : ''}${query.get('before') ? ', older page' : ''}` }),
    );
    return [h('h1', { text: 'Runs' }), form, pager, runsTable(result.runs, true, 'No runs match.')];
  }

  // ---- routing and live updates ------------------------------------------------------------------

  function route() {
    const hash = location.hash.replace(/^#/, '') || '/';
    if (/^\/runs(\?.*)?$/.test(hash)) return renderExplorer;
    let m = /^\/instances\/([^/]+)$/.exec(hash);
    if (m) return () => renderInstance(decodeURIComponent(m[1]));
    m = /^\/runs\/([^/]+)$/.exec(hash);
    if (m) return () => renderRun(decodeURIComponent(m[1]));
    return renderInstances;
  }

  /** Renders the current view; calls while one renders are coalesced into one more. */
  /** Draws the page at the address; `live`: a redraw the live feed asked for, which gives way to a viewer at work in a form. */
  async function refresh(live = false) {
    if (state.rendering) {
      state.again = state.again === 'user' || !live ? 'user' : 'live';
      return;
    }
    state.rendering = true;
    try {
      const hash = location.hash || '#/';
      const render = route();
      const nodes = await render();
      // A live redraw of the page on view, started before the viewer began to type in its form or
      // edited it, would throw the typing away: it waits (see liveRefresh).
      if (live && (state.edited || typing()) && hash === document.body.dataset.loaded && hash === (location.hash || '#/')) {
        state.deferred = true;
        return;
      }
      const scroll = window.scrollY;
      view.replaceChildren(...nodes.flat(Infinity).filter(Boolean));
      state.edited = false;
      window.scrollTo(0, scroll);
      // Said only of the address it was drawn for: one that changed meanwhile is drawn next.
      if (hash === (location.hash || '#/')) document.body.dataset.loaded = hash;
      else state.again = 'user';
    } catch (error) {
      view.replaceChildren(h('div', { class: 'notice error', text: error.message }), h('p', {}, link('#/', '← instances')));
    } finally {
      state.rendering = false;
      const again = state.again;
      state.again = false;
      if (again === 'live') liveRefresh();
      else if (again) void refresh();
    }
  }

  // A form of the view edited and not yet submitted: a redraw would throw the edit away.
  const noteEdit = (event) => {
    if (typeof event.target?.closest === 'function' && event.target.closest('form')) state.edited = true;
  };
  view.addEventListener('input', noteEdit);
  view.addEventListener('change', noteEdit);

  /** A refresh the live feed asks for; put off while the viewer is typing in a form, has edited one, or a dialog is open. */
  function liveRefresh() {
    if (document.querySelector('dialog[open]') || state.edited || typing()) {
      state.deferred = true;
      return;
    }
    void refresh(true);
  }

  /** Whether the viewer is in a field of the view. */
  function typing() {
    const active = document.activeElement;
    return Boolean(active && view.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName));
  }
  document.addEventListener('focusout', () => {
    setTimeout(() => {
      if (state.deferred) {
        state.deferred = false;
        liveRefresh();
      }
    }, 0);
  });

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
        liveRefresh();
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
