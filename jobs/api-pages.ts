/**
 * Job type `api-pages`: fetches pages of a quota-bound HTTP API into the object store, as
 * `api/<instance>/<page>.json`. Two instances usually share one API key: a `poll` instance that
 * fetches the newest page on every plan, and a `backfill` instance that fetches pages 1 to
 * `pages` once each. Naming the same `limit` (configured in the instances file's `limits`), with
 * the credential as its key, makes them share the key's quota instead of each spending all of it.
 *
 * A page the API refuses with 429 throws `RateLimitedError` with the Retry-After it sent: the
 * runner drains the shared limit for that long (every task taking it waits) and queues the
 * attempt again, which is neither a failure nor a retry.
 */
import { defineJob, defineTask, RateLimitedError, z } from 'ujr';
import type { TaskSpec } from 'ujr';

/** Parameters of an `api-pages` instance. */
export const apiPagesParams = z.object({
  /** The API's page endpoint; pages are asked as `?page=<n>` (`latest` for the newest). */
  url: z.url(),
  /** `poll`: the newest page on every plan; `backfill`: pages 1 to `pages`, each until it succeeds. */
  mode: z.enum(['poll', 'backfill']),
  /** Pages a backfill fetches. @default 20 */
  pages: z.number().int().positive().default(20),
  /** A poll fetches the newest page once per this long (at most; on the plans that come). @default 60000 */
  pollEveryMs: z.number().int().positive().default(60_000),
  /** The API key sent as `authorization: Bearer <credential>`, and the key of the limit's bucket. @default "default" */
  credential: z.string().min(1).default('default'),
  /** The shared limit its requests take (a name in the instances file's `limits`); none: as fast as the runner goes. */
  limit: z.string().min(1).optional(),
  /** Time after which a request is given up. @default 10000 */
  requestTimeoutMs: z.number().int().positive().default(10_000),
});
export type ApiPagesParams = z.infer<typeof apiPagesParams>;

const pageInput = z.object({
  /** A page number, or `latest`. */
  page: z.union([z.number().int().positive(), z.literal('latest')]),
  /** For `latest`: the start of the poll period, so that each period's poll is a task of its own. */
  at: z.number().int().optional(),
});
type PageInput = z.infer<typeof pageInput>;

/** Where a page is kept. */
export function pageKey(instanceId: string, input: PageInput): string {
  return `api/${instanceId}/${input.page === 'latest' ? `latest-${input.at ?? 0}` : `page-${String(input.page).padStart(5, '0')}`}.json`;
}

/** Milliseconds a 429's Retry-After asks for (seconds or an HTTP date); 1 s when it says nothing usable. */
export function retryAfterMs(header: string | null, now: number): number {
  if (header === null || header.trim() === '') return 1_000;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1_000;
  const at = Date.parse(header);
  return Number.isFinite(at) ? Math.max(0, at - now) : 1_000;
}

const fetchPage = defineTask<ApiPagesParams, PageInput, { page: PageInput['page']; bytes: number }>({
  input: pageInput,
  timeoutMs: 60_000,
  retry: { attempts: 3, backoffMs: 1_000 },
  async run(input, tctx) {
    const { url, credential, limit, requestTimeoutMs } = tctx.params;
    const target = new URL(url);
    target.searchParams.set('page', String(input.page));
    const response = await fetch(target, {
      headers: { authorization: `Bearer ${credential}` },
      signal: AbortSignal.any([tctx.signal, AbortSignal.timeout(requestTimeoutMs)]),
    });
    const body = await response.text();
    if (response.status === 429) {
      throw new RateLimitedError(`${target.origin}${target.pathname} answered 429 Too Many Requests for page ${String(input.page)}`, {
        retryAfterMs: retryAfterMs(response.headers.get('retry-after'), Date.now()),
        ...(limit !== undefined ? { limit } : {}),
      });
    }
    if (!response.ok) throw new Error(`${target.origin}${target.pathname} answered ${response.status} for page ${String(input.page)}: ${body.slice(0, 200)}`);
    await tctx.objects.put(pageKey(tctx.instanceId, input), body);
    return { page: input.page, bytes: Buffer.byteLength(body) };
  },
});

export const apiPages = defineJob({
  name: 'api-pages',
  params: apiPagesParams,
  schedule: 'rate(1 minute)',
  async getRunnableTasks(ctx): Promise<TaskSpec[]> {
    const { mode, pages, pollEveryMs, limit, credential } = ctx.params;
    // The instance decides which limit its requests take, and its credential which bucket.
    const limits = limit === undefined ? [] : [{ name: limit, key: credential }];
    if (mode === 'poll') {
      // One poll per period, however often the instance is asked (its tasks' ends ask it again).
      const input = { page: 'latest' as const, at: Math.floor(ctx.now() / pollEveryMs) * pollEveryMs };
      return (await ctx.history.lastSuccess({ task: 'fetch', input })) ? [] : [{ task: 'fetch', input, limits }];
    }
    const due: TaskSpec[] = [];
    for (let page = 1; page <= pages; page += 1) {
      if (!(await ctx.history.lastSuccess({ task: 'fetch', input: { page } }))) due.push({ task: 'fetch', input: { page }, limits });
    }
    return due;
  },
  tasks: { fetch: fetchPage },
});
