import { defineJob, RateLimitedError, z } from 'ujr';

export const pages = defineJob({
  name: 'pages',
  params: z.object({ url: z.url() }),
  getRunnableTasks: () => [{ task: 'fetch', input: { page: 1 } }],
  tasks: {
    fetch: {
      limits: ['feed-api'],
      async run(input: { page: number }, tctx) {
        const url = `${tctx.params.url}?page=${input.page}`;
        const response = await fetch(url, { signal: tctx.signal });
        if (response.status === 429) {
          const retryAfterMs = Number(response.headers.get('retry-after') ?? 1) * 1000;
          throw new RateLimitedError(`${url} answered 429`, { retryAfterMs, limit: 'feed-api' });
        }
        return { status: response.status };
      },
    },
  },
});
