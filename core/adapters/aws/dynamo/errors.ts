/**
 * The DynamoDB store's errors: {@link DynamoStoreError} and the translation of SDK failures into
 * it (naming the table and the operation, saying what to do next, and whether a retry can help).
 * Also how the outcomes DynamoDB reports as exceptions are recognised: a failed condition
 * (`ConditionalCheckFailedException`, by name) and the reasons of a cancelled transaction.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { StoreError } from '../../../errors.js';
import type { TableNames } from '../tables.js';

/** Table roles, for messages and for the operation wrappers. */
export type TableRole = keyof TableNames;

/** A failure of DynamoDB, naming the table and the operation, the SDK's error kept as `cause`. */
export class DynamoStoreError extends StoreError {
  override readonly retryable: boolean;

  constructor(
    message: string,
    readonly table: string,
    readonly operation: string,
    options: { cause?: unknown; retryable?: boolean } = {},
  ) {
    super(message, { cause: options.cause });
    this.retryable = options.retryable ?? true;
  }
}

const NOT_RETRYABLE = new Set(['ValidationException', 'ResourceNotFoundException', 'AccessDeniedException', 'UnrecognizedClientException', 'SerializationException']);
const THROTTLED = new Set(['ProvisionedThroughputExceededException', 'ThrottlingException', 'RequestLimitExceeded']);

/**
 * `error` as a {@link StoreError}: a StoreError as it is, any other failure as a
 * {@link DynamoStoreError} on the table of `role` that says what to do next.
 */
export function storeError(error: unknown, tables: TableNames, role: TableRole, operation: string): StoreError {
  if (error instanceof StoreError) return error;
  const table = tables[role];
  const name = error instanceof Error ? error.name : 'Error';
  const message = error instanceof Error ? error.message : String(error);
  let advice: string;
  if (name === 'ResourceNotFoundException') {
    advice = `the table or one of its indexes does not exist in this account and region; deploy the stack, or check the ${role} table name given to the store`;
  } else if (name === 'AccessDeniedException' || name === 'UnrecognizedClientException') {
    advice = `${message}; grant the role dynamodb:${operation.split(' ')[0] ?? operation} on the table and its indexes, or check the credentials in use`;
  } else if (THROTTLED.has(name)) {
    advice = `throttled after the SDK's retries (${message}); raise the table's capacity, use on-demand billing or raise the client's maxAttempts, and try again`;
  } else if (name === 'ValidationException') {
    advice = `DynamoDB refused the request: ${message}`;
  } else {
    advice = `${name}: ${message}`;
  }
  return new DynamoStoreError(`DynamoDB ${operation} on table ${table} failed: ${advice}`, table, operation, {
    cause: error,
    retryable: !NOT_RETRYABLE.has(name),
  });
}

export function isConditionalCheckFailed(error: unknown): error is Error & { Item?: unknown } {
  return error instanceof Error && error.name === 'ConditionalCheckFailedException';
}

/**
 * The reason code of each action of a cancelled transaction, in order: from
 * `CancellationReasons` when the SDK parsed them, else from the message
 * ("… specific reasons [ConditionalCheckFailed, None]").
 */
export function cancellationCodes(error: Error & { CancellationReasons?: unknown }, count: number): string[] {
  const reasons = error.CancellationReasons;
  if (Array.isArray(reasons) && reasons.length === count) {
    return reasons.map((reason: unknown) => (typeof reason === 'object' && reason !== null && 'Code' in reason && typeof reason.Code === 'string' ? reason.Code : 'None'));
  }
  const listed = /\[([^\]]*)\]\s*$/.exec(error.message)?.[1];
  return listed ? listed.split(',').map((code) => code.trim()) : [];
}

/** Whether `value` is an item in the SDK's attribute-value form (as a refused condition returns it). */
export function isAttributeMap(value: unknown): value is Record<string, AttributeValue> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'object' && v !== null);
}
