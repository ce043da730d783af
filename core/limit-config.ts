/**
 * The `limits` of the instances file (and of `createRunner` and the test runner), validated limit
 * by limit: a bad limit is reported with its name and field and left out, the others and the
 * instances load. The definitions themselves are the limits port's (./ports/limits.ts).
 *
 * ```jsonc
 * "limits": {
 *   "twitter-app": { "rate": 300, "per": "15m" },
 *   "archive-host": { "concurrency": 3 },
 *   "api": { "rate": 10, "per": "1s", "burst": 5, "concurrency": 2 }
 * }
 * ```
 */
import { z } from 'zod';
import { checkLimitName, InvalidLimitError, type LimitDefinition } from './ports/limits.js';

/**
 * A problem with the file's `limits`, as ./config.ts's `ConfigProblem` reports it (declared here
 * so that config.ts imports this module and not the other way round).
 */
export interface LimitProblem {
  /** The limit at fault; none when `limits` itself is not an object. */
  limit?: string;
  /** `limits`, `limits.<name>` or `limits.<name>.<field>`. */
  field: string;
  message: string;
}

/** One limit as written in the file. */
export type LimitEntry = z.input<typeof limitEntrySchema>;

/** The `limits` object as written in the file (and passed to `createRunner`): by limit name. */
export type LimitsConfig = Record<string, LimitEntry>;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

const durationSchema = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const ms = typeof value === 'number' ? value : parseDuration(value);
  if (ms === undefined || !Number.isFinite(ms) || ms <= 0) {
    ctx.addIssue({
      code: 'custom',
      message: `use a duration such as "500ms", "1s", "15m", "1h", "1d" or a positive number of milliseconds, not ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return ms;
});

const limitEntrySchema = z
  .object({
    rate: z.number({ error: 'use a positive number of starts per "per"' }).positive('use a positive number of starts per "per"').optional(),
    per: durationSchema.optional(),
    burst: z
      .number({ error: 'use a whole number of at least 1 (how many may start at once)' })
      .int('use a whole number of at least 1 (how many may start at once)')
      .min(1, 'use a whole number of at least 1 (how many may start at once)')
      .optional(),
    concurrency: z
      .number({ error: 'use a whole number of at least 1 (how many may run at once)' })
      .int('use a whole number of at least 1 (how many may run at once)')
      .min(1, 'use a whole number of at least 1 (how many may run at once)')
      .optional(),
  })
  .strict();

/**
 * Validates a `limits` object. Each bad limit gives problems whose `field` is
 * `limits.<name>.<field>` and is left out of `limits`.
 *
 * @example
 * ```ts
 * const { limits, problems } = parseLimits({ api: { rate: 300, per: '15m' } });
 * // limits.get('api') → { name: 'api', rate: { count: 300, perMs: 900_000, burst: 1 } }
 * ```
 */
export function parseLimits(raw: unknown): { limits: Map<string, LimitDefinition>; problems: LimitProblem[] } {
  const limits = new Map<string, LimitDefinition>();
  const problems: LimitProblem[] = [];
  if (raw === undefined) return { limits, problems };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    problems.push({ field: 'limits', message: 'use an object of limits by name: { "api": { "rate": 300, "per": "15m" } }' });
    return { limits, problems };
  }
  for (const [name, entry] of Object.entries(raw)) {
    const where = `limits.${name}`;
    try {
      checkLimitName(name);
    } catch (error) {
      if (!(error instanceof InvalidLimitError)) throw error;
      problems.push({ limit: name, field: where, message: `${error.message}; rename it` });
      continue;
    }
    const parsed = limitEntrySchema.safeParse(entry);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        if (issue.code === 'unrecognized_keys') {
          const keys = issue.keys.map((key) => `"${key}"`).join(', ');
          problems.push({ limit: name, field: `${where}.${issue.keys[0] ?? ''}`, message: `unknown field ${keys}; a limit takes rate, per, burst and concurrency` });
          continue;
        }
        const field = issue.path.length > 0 ? `${where}.${issue.path.join('.')}` : where;
        const message = issue.path.length > 0 ? issue.message : 'use an object such as { "rate": 300, "per": "15m" } or { "concurrency": 3 }';
        problems.push({ limit: name, field, message });
      }
      continue;
    }
    const { rate, per, burst, concurrency } = parsed.data;
    if (rate !== undefined && per === undefined) {
      problems.push({ limit: name, field: `${where}.per`, message: 'a rate needs "per", the time it counts over (e.g. "15m")' });
      continue;
    }
    if (per !== undefined && rate === undefined) {
      problems.push({ limit: name, field: `${where}.rate`, message: '"per" needs a "rate", how many starts it allows' });
      continue;
    }
    if (burst !== undefined && rate === undefined) {
      problems.push({ limit: name, field: `${where}.burst`, message: '"burst" needs a "rate" and "per"' });
      continue;
    }
    if (rate === undefined && concurrency === undefined) {
      problems.push({ limit: name, field: where, message: 'give it a "rate" with "per", a "concurrency", or both' });
      continue;
    }
    const definition: LimitDefinition = { name };
    if (rate !== undefined && per !== undefined) definition.rate = { count: rate, perMs: per, burst: burst ?? 1 };
    if (concurrency !== undefined) definition.concurrency = concurrency;
    limits.set(name, definition);
  }
  return { limits, problems };
}

/**
 * `parseLimits` for code that takes limits as an option (`createRunner`, `createTestRunner`):
 * every limit must validate.
 *
 * @throws {InvalidLimitError} naming each bad limit and field.
 * @example
 * ```ts
 * const limits = requireLimits({ api: { rate: 10, per: '1s' } }, 'createRunner options');
 * ```
 */
export function requireLimits(raw: unknown, source: string): Map<string, LimitDefinition> {
  const { limits, problems } = parseLimits(raw);
  if (problems.length === 0) return limits;
  const lines = problems.map((problem) => `${source}: ${problem.field}: ${problem.message}`);
  throw new InvalidLimitError(lines.length === 1 ? (lines[0] ?? '') : `${lines.length} problems: ${lines.join('; ')}`);
}

/** A duration such as `500ms`, `1.5s`, `15m`, `1h`, `1d` in ms; `undefined` when it is not one. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (!match?.[1] || !match[2]) return undefined;
  const unit = UNIT_MS[match[2]];
  return unit === undefined ? undefined : Number(match[1]) * unit;
}

/** A duration in ms as the shortest of `15m`, `1s`, `500ms`, `1.5h`. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = UNIT_MS[unit] ?? 1;
    if (ms >= size && Number.isInteger((ms / size) * 1000)) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** A definition as one phrase: `300 per 15m, burst 1; 3 at once`. */
export function formatLimit(definition: LimitDefinition): string {
  const parts: string[] = [];
  if (definition.rate) parts.push(`${definition.rate.count} per ${formatDuration(definition.rate.perMs)}, burst ${definition.rate.burst}`);
  if (definition.concurrency !== undefined) parts.push(`${definition.concurrency} at once`);
  return parts.join('; ');
}

/** Keeps the last good version of every limit that is broken in `next` (or all of them when the whole file is). */
export function mergeLimitsWithLastGood(
  lastGood: ReadonlyMap<string, LimitDefinition>,
  next: ReadonlyMap<string, LimitDefinition>,
  problems: readonly { limit?: string; field?: string }[],
  wholeFileBroken: boolean,
): Map<string, LimitDefinition> {
  if (wholeFileBroken) return new Map(lastGood);
  const merged = new Map(next);
  if (problems.some((p) => p.field === 'limits')) return new Map(lastGood);
  const broken = new Set(problems.map((p) => p.limit).filter((name): name is string => name !== undefined));
  for (const name of broken) {
    const previous = lastGood.get(name);
    if (previous && !merged.has(name)) merged.set(name, previous);
  }
  return merged;
}
