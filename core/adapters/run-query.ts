/** Run-query matching shared by the adapters that filter in process (memory, DynamoDB pages). */
import type { RunQuery } from '../ports/store.js';
import type { RunRecord } from '../types.js';

export function matchesRunQuery(run: RunRecord, query: Omit<RunQuery, 'limit'>): boolean {
  if (query.instanceId !== undefined && run.instanceId !== query.instanceId) return false;
  if (query.task !== undefined && run.task !== query.task) return false;
  if (query.signature !== undefined && run.signature !== query.signature) return false;
  if (query.status !== undefined) {
    const statuses = Array.isArray(query.status) ? query.status : [query.status];
    if (!statuses.includes(run.status)) return false;
  }
  if (query.since !== undefined && run.queuedAt < query.since) return false;
  if (query.until !== undefined && run.queuedAt >= query.until) return false;
  const { before } = query;
  if (before !== undefined && !(run.queuedAt < before.queuedAt || (run.queuedAt === before.queuedAt && run.id < before.id))) return false;
  if (query.inputContains !== undefined && !JSON.stringify(run.input).includes(query.inputContains)) return false;
  return true;
}
