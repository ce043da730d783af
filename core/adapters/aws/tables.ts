/**
 * The three DynamoDB tables of a ujr deployment, described as plain data in one place: key
 * schema, attribute definitions, global secondary indexes with their projections, and the TTL
 * attribute (none: see below). `createTables` builds them through the SDK for tests and local
 * tooling; the CDK stack mirrors the same constants, so the adapter
 * (./dynamo-store.ts) and the deployed tables cannot drift apart.
 *
 * - **leases** (the board): one item per signature ever leased, never deleted, because the
 *   fencing token in it must never go back. The sparse `byRoute` index lists what is leased on
 *   the conductor and Fargate routes and through the plain Store port; it holds keys only, so
 *   that renewals (which change no key) never write it. What is leased on the queue route (batch
 *   tasks) is listed by manifests in the runs table instead (./dynamo/queue-manifests.ts): an
 *   index entry cost a write unit at post and another at release.
 * - **runs**: run records, one partition per instance's task (`task#<hash>` /
 *   `run#<queuedAt>#<id>`, in queue order: core/run-ids.ts), so that a task's runs and its newest
 *   run are read from the table itself, strongly consistent, and a run's record from its id
 *   alone (an id minted by the runtime says its queue time and task; any other id gets a locator
 *   item, `run#<id>` / `run`); their log lines (`run#<id>` / `log#<seq>`), pending triggers
 *   (`trigger` / `<at>#<ulid>`), what became of triggers (`trigger#<id>` / `result`), the
 *   manifests of the queue route (`queued` / `<at>#<ulid>`). One index, the sparse `byLive`,
 *   which holds only runs whose status is live (queued, running, retrying), for the sweeper and
 *   the queries of live runs, so a final record never writes it: a run record costs one write
 *   unit and no index write. No index is keyed by signature: the lease item of a signature points
 *   at its runs (./dynamo/run-pointers.ts). No index holds every run, or an instance's: queries
 *   that name no task read the partition of each task with runs (./dynamo/run-instances.ts).
 * - **instances**: per instance, its configuration entry (`config`), its status (`status`), its
 *   small key/value state (`state#<key>`), its follow-up gate (`followup`) and, once it has run
 *   records, a note saying so (`runs`).
 *
 * No table has a TTL attribute. TTL deletes items on its own schedule, and none of these items
 * may go that way: a lease item carries its signature's fencing token for ever, runs are pruned
 * by `pruneRuns` (which keeps the latest success of each signature, something a per-item expiry
 * cannot know), and instance items live as long as the instance.
 */
import {
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  type AttributeDefinition,
  type CreateTableCommandInput,
  type DynamoDBClient,
  type GlobalSecondaryIndex,
  type KeySchemaElement,
} from '@aws-sdk/client-dynamodb';

/** A key attribute: DynamoDB type `S` (string) or `N` (number). All of ujr's keys are strings. */
export interface KeyAttribute {
  readonly name: string;
  readonly type: 'S' | 'N';
}

export interface IndexDefinition {
  readonly indexName: string;
  readonly partitionKey: KeyAttribute;
  readonly sortKey?: KeyAttribute;
  /** `KEYS_ONLY` (the table's and the index's keys) or `ALL` (whole items). */
  readonly projection: 'KEYS_ONLY' | 'ALL';
}

export interface TableDefinition {
  readonly partitionKey: KeyAttribute;
  readonly sortKey?: KeyAttribute;
  readonly globalSecondaryIndexes: readonly IndexDefinition[];
  /** The attribute DynamoDB's TTL reads, if any; `null`: TTL must stay off on this table. */
  readonly timeToLiveAttribute: string | null;
}

/** The physical names of one deployment's tables (from CDK outputs or the environment). */
export interface TableNames {
  leases: string;
  runs: string;
  instances: string;
}

/** Routes that have a partition of the `byRoute` index: the board's routes but the queue, plus `runner`. */
export const LEASE_ROUTE_KEYS = ['conductor', 'fargate', 'runner'] as const;

/** Whether entries on `route` are in the `byRoute` index (the queue's are in manifests instead). */
export function isIndexedRoute(route: string): boolean {
  return (LEASE_ROUTE_KEYS as readonly string[]).includes(route);
}

/**
 * The leases table (the board). `routeKey` is set while a signature is leased and removed at
 * release: the route of a board entry on the conductor or Fargate route, or `runner` for a lease
 * taken through the plain Store port (`acquireLeases`), which carries no task. An entry's route
 * is in `route`; entries on the queue route have no `routeKey`, so posting and releasing a batch
 * task write no index entry.
 */
export const LEASES_TABLE = {
  partitionKey: { name: 'signature', type: 'S' },
  globalSecondaryIndexes: [
    {
      indexName: 'byRoute',
      partitionKey: { name: 'routeKey', type: 'S' },
      sortKey: { name: 'signature', type: 'S' },
      projection: 'KEYS_ONLY',
    },
  ],
  timeToLiveAttribute: null,
} as const satisfies TableDefinition;

/**
 * The runs table. Index attributes of a run item:
 * - `queuedKey` = `<queuedAt, 15 digits>#<id>` (the order of `listRuns`), for `byLive`;
 * - `liveKey` = `live` while the run's status is live, absent once it is final: the sparse
 *   `byLive` index, what the sweeper reads instead of scanning the table.
 * Log lines and triggers carry neither, so the index holds runs only.
 */
export const RUNS_TABLE = {
  partitionKey: { name: 'pk', type: 'S' },
  sortKey: { name: 'sk', type: 'S' },
  globalSecondaryIndexes: [
    {
      indexName: 'byLive',
      partitionKey: { name: 'liveKey', type: 'S' },
      sortKey: { name: 'queuedKey', type: 'S' },
      projection: 'ALL',
    },
  ],
  timeToLiveAttribute: null,
} as const satisfies TableDefinition;

type RunIndex = (typeof RUNS_TABLE.globalSecondaryIndexes)[number];
export type RunIndexName = RunIndex['indexName'];

/** The definition of a runs table index, by name (the adapter takes key names from here). */
export function runIndex<N extends RunIndexName>(name: N): Extract<RunIndex, { indexName: N }> {
  const index = RUNS_TABLE.globalSecondaryIndexes.find((i): i is Extract<RunIndex, { indexName: N }> => i.indexName === name);
  if (!index) throw new Error(`the runs table has no index ${name}`);
  return index;
}

/** The instances table: `kind` is `config`, `status` or `state#<key>`. */
export const INSTANCES_TABLE = {
  partitionKey: { name: 'instanceId', type: 'S' },
  sortKey: { name: 'kind', type: 'S' },
  globalSecondaryIndexes: [],
  timeToLiveAttribute: null,
} as const satisfies TableDefinition;

export const TABLES = {
  leases: LEASES_TABLE,
  runs: RUNS_TABLE,
  instances: INSTANCES_TABLE,
} as const satisfies Record<keyof TableNames, TableDefinition>;

function keySchema(partitionKey: KeyAttribute, sortKey: KeyAttribute | undefined): KeySchemaElement[] {
  const schema: KeySchemaElement[] = [{ AttributeName: partitionKey.name, KeyType: 'HASH' }];
  if (sortKey) schema.push({ AttributeName: sortKey.name, KeyType: 'RANGE' });
  return schema;
}

/** The attribute definitions a table needs: every key attribute of the table and its indexes, once. */
export function attributeDefinitions(table: TableDefinition): AttributeDefinition[] {
  const seen = new Map<string, KeyAttribute['type']>();
  const add = (attribute: KeyAttribute | undefined) => {
    if (attribute) seen.set(attribute.name, attribute.type);
  };
  add(table.partitionKey);
  add(table.sortKey);
  for (const index of table.globalSecondaryIndexes) {
    add(index.partitionKey);
    add(index.sortKey);
  }
  return [...seen].map(([AttributeName, AttributeType]) => ({ AttributeName, AttributeType }));
}

/**
 * The `CreateTable` request of a table definition: on-demand billing, so a deployment pays per
 * request and never throttles on a provisioned limit it forgot to raise.
 */
export function createTableInput(name: string, table: TableDefinition): CreateTableCommandInput {
  const input: CreateTableCommandInput = {
    TableName: name,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: keySchema(table.partitionKey, table.sortKey),
    AttributeDefinitions: attributeDefinitions(table),
  };
  if (table.globalSecondaryIndexes.length > 0) {
    input.GlobalSecondaryIndexes = table.globalSecondaryIndexes.map(
      (index): GlobalSecondaryIndex => ({
        IndexName: index.indexName,
        KeySchema: keySchema(index.partitionKey, index.sortKey),
        Projection: { ProjectionType: index.projection },
      }),
    );
  }
  return input;
}

/** How long `createTables` waits for tables to become active (DynamoDB Local: at once). */
const ACTIVE_TIMEOUT_MS = 5 * 60_000;

/**
 * Creates the three tables under `names` and waits until they and their indexes are active.
 * For tests and local tooling; deployments create them with the CDK stack.
 *
 * @example
 * ```ts
 * const client = new DynamoDBClient({ endpoint: 'http://127.0.0.1:8000', region: 'us-east-1' });
 * await createTables(client, { leases: 'ujr-leases', runs: 'ujr-runs', instances: 'ujr-instances' });
 * ```
 */
export async function createTables(client: DynamoDBClient, names: TableNames): Promise<void> {
  const roles = Object.keys(TABLES) as (keyof TableNames)[];
  await Promise.all(
    roles.map(async (role) => {
      await client.send(new CreateTableCommand(createTableInput(names[role], TABLES[role])));
      await waitUntilActive(client, names[role]);
    }),
  );
}

/** Deletes the three tables (tests' cleanup); tables already gone are fine. */
export async function deleteTables(client: DynamoDBClient, names: TableNames): Promise<void> {
  await Promise.all(
    Object.keys(TABLES).map(async (role) => {
      try {
        await client.send(new DeleteTableCommand({ TableName: names[role as keyof TableNames] }));
      } catch (error) {
        if ((error as { name?: unknown }).name !== 'ResourceNotFoundException') throw error;
      }
    }),
  );
}

async function waitUntilActive(client: DynamoDBClient, name: string): Promise<void> {
  const deadline = Date.now() + ACTIVE_TIMEOUT_MS;
  for (let delayMs = 50; ; delayMs = Math.min(delayMs * 2, 2000)) {
    const { Table: table } = await client.send(new DescribeTableCommand({ TableName: name }));
    const indexesActive = (table?.GlobalSecondaryIndexes ?? []).every((index) => index.IndexStatus === 'ACTIVE');
    if (table?.TableStatus === 'ACTIVE' && indexesActive) return;
    if (Date.now() > deadline) {
      throw new Error(`table ${name} is still ${table?.TableStatus ?? 'unknown'} after ${ACTIVE_TIMEOUT_MS / 1000} s; look at it in the DynamoDB console`);
    }
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
}
