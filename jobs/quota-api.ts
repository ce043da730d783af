/**
 * A small HTTP API with a quota, to try `api-pages` and shared limits against: `GET /?page=<n>`
 * answers a page of JSON, at most `quota` requests per `perMs` per API key (the bearer token; a
 * sliding window), and `429 Too Many Requests` with `Retry-After` (whole seconds) beyond. It counts
 * what it answered, per key.
 *
 * Run it with `node --import tsx jobs/quota-api.ts [port] [quota] [perMs]` (default 8787, 10,
 * 1000), then enable the `api-*` instances of jobs/instances.json.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

export interface QuotaApi {
  /** `http://127.0.0.1:<port>/` */
  readonly url: string;
  /** Answers so far: `ok` (200) and `limited` (429), per API key. */
  counts(): Map<string, { ok: number; limited: number }>;
  close(): Promise<void>;
}

export async function startQuotaApi(options: { quota: number; perMs: number; port?: number }): Promise<QuotaApi> {
  const accepted = new Map<string, number[]>();
  const counts = new Map<string, { ok: number; limited: number }>();
  const server: Server = createServer((request, response) => {
    const key = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1] ?? 'anonymous';
    const count = counts.get(key) ?? { ok: 0, limited: 0 };
    counts.set(key, count);
    const now = Date.now();
    const recent = (accepted.get(key) ?? []).filter((at) => at > now - options.perMs);
    accepted.set(key, recent);
    if (recent.length >= options.quota) {
      count.limited += 1;
      const waitMs = (recent[0] as number) + options.perMs - now;
      response.writeHead(429, { 'retry-after': String(Math.max(1, Math.ceil(waitMs / 1000))), 'content-type': 'text/plain' });
      response.end(`quota of ${options.quota} requests per ${options.perMs} ms exceeded for this key`);
      return;
    }
    recent.push(now);
    count.ok += 1;
    const page = new URL(request.url ?? '/', 'http://localhost').searchParams.get('page') ?? 'latest';
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ page, at: now, items: Array.from({ length: 5 }, (_, i) => ({ id: `${page}-${i}` })) }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    counts: () => new Map([...counts].map(([key, value]) => [key, { ...value }])),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [port = '8787', quota = '10', perMs = '1000'] = process.argv.slice(2);
  const api = await startQuotaApi({ port: Number(port), quota: Number(quota), perMs: Number(perMs) });
  process.stdout.write(`quota API on ${api.url} (${quota} requests per ${perMs} ms per key); Ctrl-C to stop\n`);
}
