/** Requests to a status page server under test: its JSON API, parsed, and the CSRF token its page embeds. */
import type { z } from 'zod';
import type { UiServer } from '../../core/ui/server.js';

/**
 * A client of the server `current()` returns (the test's server of the moment).
 *
 * @example
 * ```ts
 * const { api, json, csrfToken } = uiClient(() => server);
 * const body = await json(await api('/api/instances'), instancesSchema);
 * ```
 */
export function uiClient(current: () => UiServer | undefined) {
  const api = (path: string, init?: RequestInit): Promise<Response> => {
    const server = current();
    if (!server) throw new Error('start the server first');
    return fetch(new URL(path, `http://127.0.0.1:${server.port}`), init);
  };
  const json = async <T>(res: Response, schema: z.ZodType<T>): Promise<T> => schema.parse(await res.json());
  /** The CSRF token the page embeds. */
  const csrfToken = async (): Promise<string> => {
    const html = await (await api('/')).text();
    const token = /name="ujr-csrf" content="([^"]+)"/.exec(html)?.[1];
    if (!token) throw new Error('no CSRF token in the page');
    return token;
  };
  return { api, json, csrfToken };
}
