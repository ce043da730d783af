/** Stores over real files and tables for tests: a SQLite file in a temp folder, fresh DynamoDB Local tables, and a count of the DynamoDB calls a client sends. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoStore } from '../../core/adapters/aws/dynamo-store.js';
import { createTables, deleteTables, type TableNames } from '../../core/adapters/aws/tables.js';
import { SqliteStore } from '../../core/adapters/sqlite/store.js';
import { T0 } from './records.js';
import { uniqueName } from '../servers/endpoints.js';

/** A store the test throws away with `cleanup`. */
export interface TestStore<S> {
  store: S;
  cleanup: () => Promise<void>;
}

/** A store on a new SQLite file in a temp folder (`prefix` names the folder). */
export async function tempSqliteStore(prefix: string): Promise<TestStore<SqliteStore>> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const store = SqliteStore.open(join(dir, 'ujr.db'));
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** New table names for one test. */
export function freshTableNames(): TableNames {
  return { leases: uniqueName('ujr-leases'), runs: uniqueName('ujr-runs'), instances: uniqueName('ujr-instances') };
}

/** A store over fresh tables on DynamoDB Local; its clock is the records' epoch (`T0`). */
export async function freshDynamoStore(client: DynamoDBClient): Promise<TestStore<DynamoStore> & { names: TableNames }> {
  const names = freshTableNames();
  await createTables(client, names);
  const store = new DynamoStore({ client, tables: names, now: () => T0 });
  return {
    store,
    names,
    cleanup: async () => {
      await store.close();
      await deleteTables(client, names);
    },
  };
}

/** Counts the DynamoDB operations `dynamo` sends (by their X-Amz-Target), through a middleware. */
export function countOperations(dynamo: DynamoDBClient): Map<string, number> {
  const counts = new Map<string, number>();
  dynamo.middlewareStack.add(
    (next) => async (args) => {
      const request: unknown = args.request;
      if (typeof request === 'object' && request !== null && 'headers' in request && typeof request.headers === 'object' && request.headers !== null) {
        for (const [header, value] of Object.entries(request.headers)) {
          if (header.toLowerCase() === 'x-amz-target' && typeof value === 'string') {
            const operation = value.split('.').pop() ?? value;
            counts.set(operation, (counts.get(operation) ?? 0) + 1);
          }
        }
      }
      return next(args);
    },
    { step: 'finalizeRequest', name: 'countOperations' },
  );
  return counts;
}
