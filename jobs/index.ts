/**
 * The example job types: a research data-collection pipeline. The runner loads the job types of
 * this module's default export; `instances.json` next to it configures one pipeline over them.
 *
 * collector (continuous) → collected/<id>/*.jsonl → processor → processed/<id>/*.json → summary
 *                                                  ↘ archiver (after processing) → archive/<id>/*.jsonl.gz
 *
 * api-pages: pages of a quota-bound HTTP API (./quota-api.ts is one to try), polled and backfilled
 * by two instances that share the API key's quota through a shared limit.
 */
import type { JobType } from 'ujr';
import { apiPages } from './api-pages.js';
import { archiver } from './archiver.js';
import { collector } from './collector.js';
import { processor } from './processor.js';
import { summary } from './summary.js';

export { apiPages, archiver, collector, processor, summary };

/** The example job types, as the runner loads them. */
const jobTypes: JobType[] = [collector, processor, archiver, summary, apiPages];
export default jobTypes;
