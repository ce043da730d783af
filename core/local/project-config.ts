/**
 * The shape of a project's ujr configuration: a `ujr.config.ts` (or `.mts`, `.js`, `.mjs`,
 * `.json`) file, or the `"ujr"` field of the project's package.json. Where the CLI looks for it and
 * how it is read: ./project.ts.
 */
import { z } from 'zod';

/** The config files the CLI looks for, in the order it reports them. One folder may hold only one. */
export const CONFIG_FILE_NAMES = ['ujr.config.ts', 'ujr.config.mts', 'ujr.config.js', 'ujr.config.mjs', 'ujr.config.json'] as const;

const path = (what: string) =>
  z
    .string({ error: `expected a string: the path of ${what}, relative to the folder of the file that names it` })
    .min(1, { error: `expected the path of ${what}, not an empty string` });

/** Validates a project's configuration (the CLI does, when it loads it). */
export const projectConfigSchema = z.strictObject({
  /** The module whose default export lists the job types. @default 'jobs/index.ts' */
  jobs: path('the jobs module').optional(),
  /** The job instances file. @default 'jobs/instances.json' */
  instances: path('the instances file').optional(),
  /** The local runtime's folder (SQLite store and data); `ujr run` creates it. @default '.ujr' */
  home: path('the home folder').optional(),
});

/** Where a project keeps its jobs module, instances file and local home; every field is optional. */
export type UjrConfig = z.infer<typeof projectConfigSchema>;

/** The fields of {@link UjrConfig}, for messages. */
export const CONFIG_FIELDS: readonly (keyof UjrConfig)[] = projectConfigSchema.keyof().options;

/**
 * Types a `ujr.config.ts` (it returns its argument: the CLI validates the file when it loads it).
 * Paths are relative to the config file's folder; flags (`--jobs`, `--instances`, `--home`) win
 * over them.
 *
 * @example
 * ```ts
 * // ujr.config.ts
 * import { defineConfig } from 'ujr';
 *
 * export default defineConfig({ jobs: 'src/jobs/index.ts', instances: 'config/instances.json' });
 * ```
 */
export function defineConfig(config: UjrConfig): UjrConfig {
  return config;
}
