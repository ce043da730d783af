/**
 * The job types of this project: the runner (`ujr run`, and on AWS the deployed functions) loads
 * this module's default export. `instances.json` next to it configures the instances that run.
 */
import type { JobType } from 'ujr';
import { periodReport } from './period-report.js';

const jobTypes: JobType[] = [periodReport];
export default jobTypes;
