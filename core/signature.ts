/**
 * Canonical JSON and default signatures. The canonical form sorts object keys, so inputs that are
 * equal as JSON give the same signature whatever their key order.
 */
import { createHash } from 'node:crypto';
import type { Json } from './types.js';

export class NotJsonError extends TypeError {
  constructor(
    readonly path: string,
    what: string,
    advice = 'use strings, numbers, booleans, null, arrays and plain objects',
  ) {
    super(`${path} is ${what}, which is not JSON; ${advice}`);
    this.name = 'NotJsonError';
  }
}

/**
 * JSON with sorted keys. Throws `NotJsonError` naming the path of a value JSON cannot hold,
 * including a reference back to an object that contains it (a cycle). The same object reached
 * twice without a cycle (a shared reference) is written twice, as `JSON.stringify` does.
 */
export function canonicalJson(value: unknown, path = 'input'): string {
  return canonical(value, path, new Map());
}

/** `ancestors` maps each object on the way down from the root to its path. */
function canonical(value: unknown, path: string, ancestors: Map<object, string>): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new NotJsonError(path, String(value));
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      const ancestor = ancestors.get(value);
      if (ancestor !== undefined) {
        throw new NotJsonError(
          path,
          `circular (it refers back to ${ancestor})`,
          'results, inputs, checkpoints and state values must be plain JSON trees: store a copy or an id of what you need, not a reference to an enclosing object',
        );
      }
      ancestors.set(value, path);
      let text: string;
      if (Array.isArray(value)) {
        text = `[${value.map((item, i) => canonical(item, `${path}[${i}]`, ancestors)).join(',')}]`;
      } else {
        const proto: unknown = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) {
          throw new NotJsonError(path, `a ${value.constructor.name}`);
        }
        const record = value as Record<string, unknown>;
        const parts: string[] = [];
        for (const key of Object.keys(record).sort()) {
          const item = record[key];
          if (item === undefined) continue;
          parts.push(`${JSON.stringify(key)}:${canonical(item, `${path}.${key}`, ancestors)}`);
        }
        text = `{${parts.join(',')}}`;
      }
      ancestors.delete(value);
      return text;
    }
    default:
      throw new NotJsonError(path, `a ${typeof value}`);
  }
}

/** Parses JSON text produced by this module or by a store (trusted origin). */
export function parseJson(text: string): Json {
  return JSON.parse(text) as Json;
}

/** The default signature: a stable hash of instance id, task name and canonical input. */
export function defaultSignature(instanceId: string, task: string, canonicalInput: string): string {
  const hash = createHash('sha256')
    .update(instanceId)
    .update('\0')
    .update(task)
    .update('\0')
    .update(canonicalInput)
    .digest('base64url')
    .slice(0, 22);
  return `${instanceId}/${task}/${hash}`;
}
