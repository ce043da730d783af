/**
 * Instance schedules: `rate(5 minutes)` (as EventBridge writes it), a short form `30s`, `5m`,
 * `2h`, `1d`, or a cron expression with 5 or 6 fields (`0 6 * * *`: daily at 06:00), evaluated in UTC.
 */
import { Cron } from 'croner';

export interface Schedule {
  readonly text: string;
  /** The first due time strictly after `after` (epoch ms). */
  next(after: number): number;
}

const UNIT_MS: Record<string, number> = {
  s: 1_000,
  sec: 1_000,
  second: 1_000,
  seconds: 1_000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000,
};

const RATE = /^rate\(\s*(\d+)\s*([a-z]+)\s*\)$/i;
const SHORT = /^(\d+)\s*(s|m|h|d)$/i;

/** Parses a schedule; throws an Error whose message says what forms are accepted. */
export function parseSchedule(text: string): Schedule {
  const trimmed = text.trim();
  const rate = RATE.exec(trimmed) ?? SHORT.exec(trimmed);
  if (rate) {
    const amount = Number(rate[1]);
    const unit = UNIT_MS[(rate[2] ?? '').toLowerCase()];
    if (unit === undefined || amount <= 0) {
      throw new Error(`"${text}" is not a valid rate: use a positive number and seconds, minutes, hours or days`);
    }
    const periodMs = amount * unit;
    return { text: trimmed, next: (after) => after + periodMs };
  }
  let cron: Cron;
  try {
    cron = new Cron(trimmed, { timezone: 'UTC', paused: true });
  } catch (error) {
    throw new Error(
      `"${text}" is neither a rate (e.g. "rate(5 minutes)" or "5m") nor a cron expression (e.g. "0 6 * * *"): ${
        error instanceof Error ? error.message : String(error)
      }`,
    );
  }
  return {
    text: trimmed,
    next(after) {
      const due = cron.nextRun(new Date(after));
      return due ? due.getTime() : Number.POSITIVE_INFINITY;
    },
  };
}
