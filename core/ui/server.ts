/**
 * The status page's HTTP server (`ujr ui`), on node:http: static files (`static/`), a JSON API
 * over a status source (./source.ts: the local store and instances file, or a deployed stack), and
 * server-sent events that make open pages refresh.
 *
 * Reads: GET /api/instances, /api/instances/:id (with each task's input JSON Schema where the job
 * types are known), /api/instances/:id/timeline?hours=24, /api/runs (the explorer: filters,
 * search and cursor pages), /api/runs/:id, /api/runs/:id/logs, /api/events. Actions (POST):
 * /api/instances/:id/run|enable|disable, /api/runs/:id/retry|cancel.
 *
 * Security: loopback only unless a token is given (then every request needs it: a cookie set from
 * `?token=` on first visit, or `Authorization: Bearer`); on loopback the Host header must name
 * the loopback address (no DNS rebinding). Mutating requests are POSTs with a JSON body and the
 * page's CSRF token in `X-UJR-CSRF`, from the server's own origin. Every response carries a
 * Content-Security-Policy without inline scripts; the page builds its DOM with textContent only.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { monotonicFactory } from 'ulid';
import { z } from 'zod';
import { loadJobTypes } from '../local/jobs-module.js';
import type { LocalPaths } from '../local/runtime.js';
import type { RunQuery, Store } from '../ports/store.js';
import { canonicalJson } from '../signature.js';
import { LIVE_STATUSES, RUN_STATUSES, type InstanceConfig, type JobType, type Json, type RunRecord, type RunStatus } from '../types.js';
import { HttpError, UiConfigError } from './errors.js';
import { localStatusSource, type SourceConfig, type StatusSource } from './source.js';
import { atLeast, isLogLevel, StatusReader } from './status.js';

/** The local installation: the store `ujr run` writes and the paths of its instances file and job types. */
export interface LocalUiSource {
  store: Store;
  paths: LocalPaths;
  /** Job types; loaded from `paths.jobsModule` when not given. */
  jobs?: JobType[];
}

export type UiServerOptions = UiServerCommonOptions & (LocalUiSource | { source: StatusSource });

export interface UiServerCommonOptions {
  /** Address to bind. Anything but loopback needs `token`. @default '127.0.0.1' */
  host?: string;
  /** Port; 0 takes any free one. @default 0 */
  port?: number;
  /** Required on every request when given; mandatory off loopback. */
  token?: string;
  /** The clock. @default Date.now */
  now?: () => number;
  /** How often open pages are sent a snapshot when it changed. @default the source's (1000 locally) */
  eventIntervalMs?: number;
}

export interface UiServer {
  /** The page's address (with `?token=` when a token is set). */
  url: string;
  port: number;
  close(): Promise<void>;
}

const STATIC_DIR = new URL('./static/', import.meta.url);
const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};
const COOKIE = 'ujr_token';
const MAX_BODY = 1_048_576;

/** Ended runs that "Retry" asks for again (a success is not retried; a live run is still going). */
const RETRYABLE: readonly RunStatus[] = ['failed', 'interrupted', 'cancelled'];
/** How `q` of the runs explorer matched: a run id, a signature, or a text of the input. */
const MATCHES = ['id', 'signature', 'input'] as const;
type Match = (typeof MATCHES)[number];

const runBodySchema = z
  .object({
    task: z.string().min(1).optional(),
    input: z.unknown().optional(),
  })
  .strict();

/** Whether `host` is a loopback address or name. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (bare === 'localhost' || bare === '::1') return true;
  return isIP(bare) === 4 && bare.startsWith('127.');
}

/**
 * Starts the status page's server.
 *
 * @throws {UiConfigError} when asked to bind a non-loopback address without a token.
 * @example
 * ```ts
 * const store = openLocalStore(paths);
 * const ui = await startUiServer({ store, paths, port: 4680 }); // or { source: stackStatusSource(...) }
 * console.log(ui.url); // http://127.0.0.1:4680/
 * await ui.close();
 * await store.close();
 * ```
 */
export async function startUiServer(options: UiServerOptions): Promise<UiServer> {
  const host = options.host ?? '127.0.0.1';
  const token = options.token === '' ? undefined : options.token;
  const loopback = isLoopback(host);
  if (!loopback && token === undefined) {
    throw new UiConfigError(
      `refusing to serve the status page on ${host} without a token: anyone who can reach it could run and disable jobs; pass --token <secret> (or set UJR_UI_TOKEN), or use --host 127.0.0.1`,
    );
  }
  const now = options.now ?? Date.now;
  // Locally the job types are known, and with them each task's input schema (Run now checks it).
  const jobs = 'source' in options ? undefined : (options.jobs ?? (await loadJobTypes(options.paths.jobsModule)));
  const source =
    'source' in options
      ? options.source
      : await localStatusSource({ store: options.store, paths: options.paths, jobs: jobs ?? [], now, nextId: monotonicFactory() });
  const reader = new StatusReader(source, now);
  const csrf = randomBytes(24).toString('base64url');
  const files = loadStatic(csrf, source.label);
  const clients = new Set<ServerResponse>();
  let lastSnapshot = '';
  let port = 0;

  const routes = new Api(source, reader, jobs);

  const server = createServer((req, res) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    handle(req, res).catch((error: unknown) => {
      if (error instanceof HttpError) sendJson(res, error.status, { error: error.message });
      else sendJson(res, 500, { error: error instanceof Error ? error.message : String(error) });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://ujr.invalid');
    const method = req.method ?? 'GET';
    checkHost(req);
    if (token !== undefined && !authorized(req, url, res)) return;
    const path = url.pathname;

    if (path === '/' || path === '/index.html') return sendFile(res, method, files.index, 'text/html; charset=utf-8');
    if (path === '/app.js') return sendFile(res, method, files.js, 'text/javascript; charset=utf-8');
    if (path === '/app.css') return sendFile(res, method, files.css, 'text/css; charset=utf-8');
    if (path === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    if (!path.startsWith('/api/')) throw new HttpError(404, `no page at ${path}; the status page is at /`);

    if (method === 'POST') {
      checkMutation(req);
      const body = await readJsonBody(req);
      const retry = /^\/api\/runs\/([^/]+)\/(retry|cancel)$/.exec(path);
      if (retry) return sendJson(res, 202, retry[2] === 'retry' ? await routes.retry(segment(retry[1])) : await routes.cancel(segment(retry[1])));
      const match = /^\/api\/instances\/([^/]+)\/(run|enable|disable)$/.exec(path);
      if (!match) throw new HttpError(404, `no action at ${path}`);
      const id = segment(match[1]);
      const action = match[2];
      if (action === 'run') return sendJson(res, 202, await routes.runNow(id, body));
      return sendJson(res, 200, await routes.setEnabled(id, action === 'enable'));
    }
    if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `${method} is not allowed; use GET, or POST for actions`);

    if (path === '/api/events') return openEvents(req, res);
    if (path === '/api/instances') return sendJson(res, 200, await reader.instances());
    if (path === '/api/limits') return sendJson(res, 200, await reader.limits());
    let match = /^\/api\/instances\/([^/]+)$/.exec(path);
    if (match) return sendJson(res, 200, await routes.instance(segment(match[1])));
    match = /^\/api\/instances\/([^/]+)\/timeline$/.exec(path);
    if (match) return sendJson(res, 200, await routes.timeline(segment(match[1]), url.searchParams));
    if (path === '/api/runs') return sendJson(res, 200, await routes.runs(url.searchParams));
    match = /^\/api\/runs\/([^/]+)$/.exec(path);
    if (match) return sendJson(res, 200, await routes.run(segment(match[1])));
    match = /^\/api\/runs\/([^/]+)\/logs$/.exec(path);
    if (match) return sendJson(res, 200, await routes.logs(segment(match[1]), url.searchParams));
    throw new HttpError(404, `no API at ${path}`);
  }

  /** On loopback, the Host header must name a loopback address and our port (DNS rebinding). */
  function checkHost(req: IncomingMessage): void {
    if (!loopback) return;
    const header = req.headers.host ?? '';
    const name = header.replace(/:\d+$/, '');
    if (!isLoopback(name) || header !== `${name}:${port}`) {
      throw new HttpError(403, `unexpected Host "${header}": open the page at http://127.0.0.1:${port}/`);
    }
  }

  function authorized(req: IncomingMessage, url: URL, res: ServerResponse): boolean {
    const expected = token ?? '';
    const fromQuery = url.searchParams.get('token');
    if (fromQuery !== null && sameSecret(fromQuery, expected) && (req.method === 'GET' || req.method === 'HEAD')) {
      url.searchParams.delete('token');
      res.setHeader('Set-Cookie', `${COOKIE}=${encodeURIComponent(expected)}; Path=/; HttpOnly; SameSite=Strict`);
      res.writeHead(303, { Location: `${url.pathname}${url.search}` }).end();
      return false;
    }
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const cookie = cookieValue(req.headers.cookie, COOKIE);
    if ((bearer !== undefined && sameSecret(bearer, expected)) || (cookie !== undefined && sameSecret(cookie, expected))) return true;
    sendJson(res, 401, { error: 'this status page needs its token: open the URL "ujr ui" printed (with ?token=…) or send Authorization: Bearer <token>' });
    return false;
  }

  /** POSTs must come from our own page: custom CSRF header, same origin, JSON body. */
  function checkMutation(req: IncomingMessage): void {
    const sent = req.headers['x-ujr-csrf'];
    if (typeof sent !== 'string' || !sameSecret(sent, csrf)) {
      throw new HttpError(403, 'missing or wrong X-UJR-CSRF header: actions must come from the status page');
    }
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host ?? ''}`) {
      throw new HttpError(403, `cross-origin request from ${origin} refused`);
    }
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') {
      throw new HttpError(403, `cross-site request (${String(site)}) refused`);
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json') throw new HttpError(415, 'send actions with Content-Type: application/json');
  }

  function openEvents(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    if (lastSnapshot !== '') res.write(`event: snapshot\ndata: ${lastSnapshot}\n\n`);
    clients.add(res);
    req.on('close', () => clients.delete(res));
  }

  let pushing = false;
  async function push(): Promise<void> {
    if (pushing || clients.size === 0) return;
    pushing = true;
    try {
      const snapshot = JSON.stringify(await reader.snapshot());
      if (snapshot !== lastSnapshot) {
        lastSnapshot = snapshot;
        for (const client of clients) client.write(`event: snapshot\ndata: ${snapshot}\n\n`);
      } else {
        for (const client of clients) client.write(': still here\n\n');
      }
    } catch (error) {
      const message = JSON.stringify({ error: error instanceof Error ? error.message : String(error) });
      for (const client of clients) client.write(`event: problem\ndata: ${message}\n\n`);
    } finally {
      pushing = false;
    }
  }
  const timer = setInterval(() => void push(), options.eventIntervalMs ?? source.eventIntervalMs);
  timer.unref();

  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'EADDRINUSE'
          ? new UiConfigError(`port ${options.port ?? 0} on ${host} is in use: pass another --port (0 takes any free port)`, { cause: error })
          : error,
      );
    };
    server.once('error', onError);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  const url = `http://${shownHost === '0.0.0.0' || shownHost === '[::]' ? '127.0.0.1' : shownHost}:${port}/${token !== undefined ? `?token=${encodeURIComponent(token)}` : ''}`;

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        clearInterval(timer);
        for (const client of clients) client.end();
        clients.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** The API's reads and actions (the HTTP plumbing is above); what they read and do is the source's. */
class Api {
  constructor(
    private readonly source: StatusSource,
    private readonly reader: StatusReader,
    /** The job types, where known (locally): their tasks' input schemas. */
    private readonly jobs: JobType[] | undefined,
  ) {}

  async findInstance(id: string): Promise<{ instance: InstanceConfig; config: SourceConfig }> {
    const config = await this.reader.config();
    const instance = config.instances.find((i) => i.id === id);
    if (!instance) {
      throw new HttpError(404, `no job instance "${id}" in ${this.source.instancesSource}; known: ${config.instances.map((i) => i.id).join(', ') || '(none)'}`);
    }
    return { instance, config };
  }

  async instance(id: string): Promise<unknown> {
    const { instance } = await this.findInstance(id);
    const detail = await this.reader.instance(instance);
    return { ...detail, inputSchemas: this.inputSchemas(instance) };
  }

  /**
   * Each task's input as JSON Schema (zod's `toJSONSchema`), so that the page checks a Run now
   * input before sending it; `null` for a task without an input schema, or one JSON Schema
   * cannot express; `undefined` when the job types are not known here (a stack's page).
   */
  private inputSchemas(instance: InstanceConfig): Record<string, unknown> | undefined {
    const job = this.jobs?.find((j) => j.name === instance.job);
    if (!job) return undefined;
    const out: Record<string, unknown> = {};
    for (const [name, task] of Object.entries(job.tasks)) {
      if (task.input === undefined) out[name] = null;
      else {
        try {
          out[name] = z.toJSONSchema(task.input, { io: 'input', unrepresentable: 'any' });
        } catch {
          out[name] = null;
        }
      }
    }
    return out;
  }

  async timeline(id: string, query: URLSearchParams): Promise<unknown> {
    const { instance } = await this.findInstance(id);
    const hoursText = query.get('hours') || '24';
    const hours = Number(hoursText);
    if (!Number.isInteger(hours) || hours < 1 || hours > 168) throw new HttpError(400, `hours "${hoursText}" must be a whole number from 1 to 168`);
    return this.reader.timeline(instance, hours);
  }

  /**
   * The runs explorer: filters (`instance`, `task`, `status` as a comma list, `from`/`to` in
   * epoch ms on the queue time), a search `q` (a run id, else a signature, else a text of the
   * input; `match` pins which on later pages), and pages: `before` is the cursor `next` of the
   * page before (`<queuedAt>.<id>`).
   */
  async runs(query: URLSearchParams): Promise<unknown> {
    const statuses = (query.get('status') || '').split(',').filter((s) => s !== '');
    for (const status of statuses) {
      if (!(RUN_STATUSES as readonly string[]).includes(status)) throw new HttpError(400, `status "${status}" is not one of ${RUN_STATUSES.join(', ')}`);
    }
    const limitText = query.get('limit') || '50';
    const limit = Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1_000) throw new HttpError(400, `limit "${limitText}" must be a whole number from 1 to 1000`);
    const since = epochParam(query, 'from');
    const until = epochParam(query, 'to');
    const before = cursorParam(query.get('before') || undefined);
    const filters: RunQuery = {
      instanceId: query.get('instance') || undefined,
      task: query.get('task') || undefined,
      status: statuses.length === 0 ? undefined : statuses.length === 1 ? (statuses[0] as RunStatus) : (statuses as RunStatus[]),
      since,
      until,
      before,
      limit,
    };
    for (const key of Object.keys(filters) as (keyof RunQuery)[]) if (filters[key] === undefined) delete filters[key];
    const q = (query.get('q') || '').trim();
    const matchText = query.get('match') || undefined;
    if (matchText !== undefined && !(MATCHES as readonly string[]).includes(matchText)) throw new HttpError(400, `match "${matchText}" is not one of ${MATCHES.join(', ')}`);
    let match = matchText as Match | undefined;
    if (q === '') return page(await this.source.store.listRuns(filters), limit);
    if (match === undefined || match === 'id') {
      const run = await this.source.getRun(q);
      if (run && matchesFilters(run, filters)) return { ...page([run], limit), match: 'id' };
      if (match === 'id') return { runs: [], next: null, match };
    }
    if (match === undefined || match === 'signature') {
      const runs = await this.source.store.listRuns({ ...filters, signature: q });
      if (runs.length > 0 || match === 'signature') return { ...page(runs, limit), match: 'signature' };
    }
    match = 'input';
    return { ...page(await this.source.store.listRuns({ ...filters, inputContains: q }), limit), match };
  }

  /** Retry: asks for the run's task again with the same input, as Run now with that task and input would. */
  async retry(id: string): Promise<unknown> {
    const run = await this.source.getRun(id);
    if (!run) throw new HttpError(404, `no run has id "${id}"`);
    if (!RETRYABLE.includes(run.status)) {
      throw new HttpError(409, `run ${id} is ${run.status}: only a ${RETRYABLE.join(', ')} run can be retried${run.status === 'succeeded' ? '; use Run now to run its task again' : ''}`);
    }
    const out = await this.runNow(run.instanceId, { task: run.task, input: run.input });
    return { ...(out as Record<string, unknown>), retryOf: run.id };
  }

  /** Cancel: asks whoever holds a live run to end it `cancelled` (a running handler is aborted). */
  async cancel(id: string): Promise<unknown> {
    const run = await this.source.getRun(id);
    if (!run) throw new HttpError(404, `no run has id "${id}"`);
    if (!LIVE_STATUSES.includes(run.status)) throw new HttpError(409, `run ${id} is ${run.status}: only a queued, running or retrying run can be cancelled`);
    return this.source.cancel(run);
  }

  async run(id: string): Promise<unknown> {
    const run = await this.source.getRun(id);
    if (!run) throw new HttpError(404, `no run has id "${id}"`);
    return run;
  }

  async logs(id: string, query: URLSearchParams): Promise<unknown> {
    const run = await this.source.getRun(id);
    if (!run) throw new HttpError(404, `no run has id "${id}"`);
    const afterText = query.get('after') || '0';
    const after = Number(afterText);
    if (!Number.isInteger(after) || after < 0) throw new HttpError(400, `after "${afterText}" must be a log line's seq (a whole number)`);
    const level = query.get('level') || undefined;
    if (level !== undefined && !isLogLevel(level)) throw new HttpError(400, `level "${level}" is not one of debug, info, warn, error`);
    const lines = await this.source.logs(run, after);
    return { lines: lines.filter((line) => atLeast(line.level, level)) };
  }

  async runNow(id: string, body: unknown): Promise<unknown> {
    const { instance, config } = await this.findInstance(id);
    const parsed = runBodySchema.safeParse(body ?? {});
    if (!parsed.success) {
      throw new HttpError(400, `bad body: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}; send {} or {"task": …, "input": {…}}`);
    }
    const { task, input } = parsed.data;
    if (task !== undefined && config.knowsTasks) {
      const tasks = await this.reader.tasksOf(instance);
      if (!tasks.includes(task)) throw new HttpError(404, `job type "${instance.job}" has no task "${task}"; its tasks: ${tasks.join(', ')}`);
    }
    const schema = task === undefined ? undefined : this.jobs?.find((j) => j.name === instance.job)?.tasks[task]?.input;
    if (schema !== undefined) {
      const checked = schema.safeParse(input ?? {});
      if (!checked.success) {
        throw new HttpError(400, `input of task "${task}" does not match its schema: ${checked.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`).join('; ')}`);
      }
    }
    if (task === undefined && input !== undefined) throw new HttpError(400, 'an input needs a task: send {"task": …, "input": {…}}');
    let json: Json | undefined;
    if (input !== undefined) {
      try {
        canonicalJson(input, 'input');
      } catch (error) {
        throw new HttpError(400, error instanceof Error ? error.message : String(error));
      }
      json = input as Json;
    }
    return this.source.runNow(instance, task !== undefined ? { task, ...(json !== undefined ? { input: json } : {}) } : {});
  }

  async setEnabled(id: string, enabled: boolean): Promise<{ id: string; enabled: boolean }> {
    await this.source.setEnabled(id, enabled);
    return { id, enabled };
  }
}

/** A page of runs and the cursor of the next one (`null` on the last page). */
function page(runs: RunRecord[], limit: number): { runs: RunRecord[]; next: string | null } {
  const last = runs[runs.length - 1];
  return { runs, next: runs.length >= limit && last ? `${last.queuedAt}.${last.id}` : null };
}

function matchesFilters(run: RunRecord, query: RunQuery): boolean {
  const statuses = query.status === undefined ? undefined : Array.isArray(query.status) ? query.status : [query.status];
  return (
    (query.instanceId === undefined || run.instanceId === query.instanceId) &&
    (query.task === undefined || run.task === query.task) &&
    (statuses === undefined || statuses.includes(run.status)) &&
    (query.since === undefined || run.queuedAt >= query.since) &&
    (query.until === undefined || run.queuedAt < query.until) &&
    (query.before === undefined || run.queuedAt < query.before.queuedAt || (run.queuedAt === query.before.queuedAt && run.id < query.before.id))
  );
}

function epochParam(query: URLSearchParams, name: string): number | undefined {
  const text = query.get(name) || undefined;
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) throw new HttpError(400, `${name} "${text}" must be a time in epoch milliseconds`);
  return value;
}

function cursorParam(text: string | undefined): RunQuery['before'] {
  if (text === undefined) return undefined;
  const match = /^(\d+)\.(.+)$/.exec(text);
  const queuedAt = Number(match?.[1]);
  if (!match?.[2] || !Number.isSafeInteger(queuedAt)) throw new HttpError(400, `before "${text}" is not a cursor: pass the "next" of the page before`);
  return { queuedAt, id: match[2] };
}

function loadStatic(csrf: string, label: string): { index: string; js: string; css: string } {
  const read = (name: string) => readFileSync(new URL(name, STATIC_DIR), 'utf8');
  const index = read('index.html').replace('__UJR_CSRF__', csrf).replace('__UJR_WHERE__', escapeHtml(label));
  return { index, js: read('app.js'), css: read('app.css') };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function sendFile(res: ServerResponse, method: string, body: string, type: string): void {
  if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `${method} is not allowed here; use GET`);
  res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  res.end(method === 'HEAD' ? undefined : body);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(body));
}

async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY) throw new HttpError(413, `body over ${MAX_BODY} bytes`);
    chunks.push(buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new HttpError(400, `body is not valid JSON (${(error as Error).message})`);
  }
}

/** A decoded path segment (an instance or run id). */
function segment(raw: string | undefined): string {
  try {
    return decodeURIComponent(raw ?? '');
  } catch {
    throw new HttpError(400, `"${raw ?? ''}" is not a valid URL-encoded id`);
  }
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) {
      try {
        return decodeURIComponent(rest.join('='));
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
