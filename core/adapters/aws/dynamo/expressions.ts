/**
 * Building DynamoDB expressions: the placeholders of one request ({@link Expr}), update
 * expressions from their parts, and the fencing condition every write under a lease carries.
 */
import type { LeaseRef } from '../../../ports/store.js';

/** Builds the placeholders of one request's expressions. */
export class Expr {
  readonly names: Record<string, string> = {};
  readonly values: Record<string, unknown> = {};
  private readonly placeholders = new Map<string, string>();
  private count = 0;

  /** The `#name` placeholder of an attribute name. */
  n(attribute: string): string {
    let placeholder = this.placeholders.get(attribute);
    if (!placeholder) {
      placeholder = /^[A-Za-z][A-Za-z0-9]*$/.test(attribute) ? `#${attribute}` : `#k${this.placeholders.size}`;
      this.placeholders.set(attribute, placeholder);
      this.names[placeholder] = attribute;
    }
    return placeholder;
  }

  /** The `:v` placeholder of a value. */
  v(value: unknown): string {
    const placeholder = `:v${this.count++}`;
    this.values[placeholder] = value;
    return placeholder;
  }

  /** `ExpressionAttributeNames` and `ExpressionAttributeValues`, leaving out empty ones (DynamoDB refuses them). */
  params(): { ExpressionAttributeNames?: Record<string, string>; ExpressionAttributeValues?: Record<string, unknown> } {
    return {
      ...(Object.keys(this.names).length > 0 ? { ExpressionAttributeNames: this.names } : {}),
      ...(Object.keys(this.values).length > 0 ? { ExpressionAttributeValues: this.values } : {}),
    };
  }
}

/** `SET a, b REMOVE c` from its parts (either may be empty, not both). */
export function updateExpression(sets: readonly string[], removes: readonly string[]): string {
  const parts: string[] = [];
  if (sets.length > 0) parts.push(`SET ${sets.join(', ')}`);
  if (removes.length > 0) parts.push(`REMOVE ${removes.join(', ')}`);
  return parts.join(' ');
}

/** The fencing condition: owner and token both still match. */
export function fenced(e: Expr, ref: LeaseRef): string {
  return `${e.n('owner')} = ${e.v(ref.owner)} AND ${e.n('token')} = ${e.v(ref.token)}`;
}
