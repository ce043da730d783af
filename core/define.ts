/** `defineJob`: how users write a job type. */
import type { z } from 'zod';
import type { JobType, PlanContext, TaskDefinition, TaskSpec } from './types.js';

export interface JobDefinition<S extends z.ZodType, T extends Record<string, TaskDefinition<z.infer<S>>>> {
  /** Unique among the job types loaded by one runner; instances name it in `job`. */
  name: string;
  /**
   * Validates each instance's params; the parsed value is what `ctx.params` holds. Params are
   * strict: a key the object schema does not name is an error naming it (a misspelt param is not
   * dropped silently). A job that takes other keys says so: `z.looseObject({...})` (or `.loose()`,
   * `.passthrough()`) keeps them, `.catchall(schema)` validates them.
   */
  params: S;
  /** Default schedule of the instances that give none. Default `rate(1 minute)`. */
  schedule?: string;
  /** Asked on the instance's schedule and as soon as one of its tasks finishes. */
  getRunnableTasks(ctx: PlanContext<z.infer<S>>): TaskSpec[] | Promise<TaskSpec[]>;
  tasks: T;
}

/**
 * Defines a job type.
 *
 * @example
 * ```ts
 * export const greeter = defineJob({
 *   name: 'greeter',
 *   params: z.object({ names: z.array(z.string()) }),
 *   async getRunnableTasks(ctx) {
 *     const specs = [];
 *     for (const name of ctx.params.names) {
 *       if (!(await ctx.history.lastSuccess({ task: 'greet', input: { name } }))) {
 *         specs.push({ task: 'greet', input: { name } });
 *       }
 *     }
 *     return specs;
 *   },
 *   tasks: {
 *     greet: { run: (input: { name: string }, tctx) => tctx.log.info(`hello ${input.name}`) },
 *   },
 * });
 * ```
 */
export function defineJob<S extends z.ZodType, T extends Record<string, TaskDefinition<z.infer<S>>>>(
  definition: JobDefinition<S, T>,
): JobType<z.infer<S>> & { tasks: T } {
  if (!/^[a-z0-9][a-z0-9_.-]*$/i.test(definition.name)) {
    throw new TypeError(
      `job type name "${definition.name}" must start with a letter or digit and hold only letters, digits, "_", "." and "-"`,
    );
  }
  if (Object.keys(definition.tasks).length === 0) {
    throw new TypeError(`job type "${definition.name}" defines no tasks; add at least one under "tasks"`);
  }
  return definition;
}

/** Types a task definition's input without repeating it in `run`. */
export function defineTask<P = unknown, I = any, R = unknown>(definition: TaskDefinition<P, I, R>): TaskDefinition<P, I, R> {
  return definition;
}
