/** What asks for a follow-up plan: only runs that ended for good, once per instance per flush. */
import { describe, expect, it } from 'vitest';
import { FollowUpRequests } from '../../../core/cloud/follow-ups.js';
import type { FollowUpMessage } from '../../../core/cloud/messages.js';
import { silentTelemetry } from '../../../core/cloud/ports.js';
import { makeRun, T0 } from '../../helpers/records.js';

describe('follow-up requests', () => {
  it('asks once per instance for the runs that ended for good, not for attempts that will be retried', async () => {
    const sent: FollowUpMessage[][] = [];
    const requests = new FollowUpRequests({ queue: { send: (messages) => (sent.push(messages), Promise.resolve([])) }, telemetry: silentTelemetry, now: () => T0 + 100 });

    requests.ended(makeRun('a1', { status: 'succeeded', endedAt: T0 + 1 }));
    requests.ended(makeRun('a2', { status: 'failed', endedAt: T0 + 2, nextRunId: 'a3' }));
    requests.ended(makeRun('a4', { status: 'failed', endedAt: T0 + 3, signature: 'collector-a/fetch/y' }));
    requests.ended(makeRun('b1', { instanceId: 'other', status: 'cancelled', endedAt: T0 + 4 }));
    requests.ended(makeRun('c1', { instanceId: 'third', status: 'running' }));
    await requests.flush();
    await requests.flush();

    expect(sent).toHaveLength(1);
    expect(sent[0]?.map((m) => [m.followUp, m.at, m.ended.map((e) => e.runId)])).toEqual([
      ['collector-a', T0 + 100, ['a1', 'a4']],
      ['other', T0 + 100, ['b1']],
    ]);
  });
});
