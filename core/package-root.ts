/**
 * Where the ujr package lives, whether it runs from its sources (a checkout of the repository,
 * `core/package-root.ts`) or compiled (an installed package, `dist/core/package-root.js`), and how to name a
 * module next to the caller in either form.
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** True when running from the TypeScript sources (a checkout), false from dist/. */
export const FROM_SOURCE = import.meta.url.endsWith('.ts');

/** The package's root folder: the one holding its package.json. */
export const ROOT = FROM_SOURCE ? resolve(here, '..') : resolve(here, '..', '..');

/**
 * The file of module `name` (no extension) next to the module at `url`: `name.ts` in the sources,
 * `name.js` in dist/.
 *
 * @example
 * ```ts
 * fork(sibling(import.meta.url, 'task-host'), ...); // core/local/task-host.ts or dist/core/local/task-host.js
 * ```
 */
export function sibling(url: string, name: string): string {
  const file = fileURLToPath(new URL(`./${name}${url.endsWith('.ts') ? '.ts' : '.js'}`, url));
  if (!existsSync(file)) throw new Error(`ujr is incomplete: ${file} is missing; reinstall the package`);
  return file;
}
