/**
 * The example job types: a research data-collection pipeline. The runner loads the job types of
 * this module's default export; `instances.json` next to it configures one pipeline over them.
 *
 * collector (continuous) → collected/<id>/*.jsonl → processor → processed/<id>/*.json → summary
 *                                                  ↘ archiver (after processing) → archive/<id>/*.jsonl.gz
 */
import type { JobType } from 'ujr';
import { archiver } from './archiver.js';
import { collector } from './collector.js';
import { processor } from './processor.js';
import { summary } from './summary.js';

export { archiver, collector, processor, summary };

/** The example job types, as the runner loads them. */
const jobTypes: JobType[] = [collector, processor, archiver, summary];
export default jobTypes;
