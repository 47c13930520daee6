import { z } from 'zod';

/**
 * The usage meter's poll loop (actor `poll`). The meter is polled by an effect; each answer or
 * failure comes back as an event with its time, so the backoff, the auth and network pauses and
 * what the queue is told can be replayed and verified.
 */

const iso = z.iso.datetime();

export const backoffSchema = z.strictObject({
  initialMs: z.number().int().positive().describe('the wait after the first failure'),
  factor: z.number().min(1).describe('each further failure multiplies the wait by this'),
  maxMs: z.number().int().positive().describe('the wait never exceeds this'),
});
export type Backoff = z.infer<typeof backoffSchema>;

/** How the meter is reached: a URL (GET, JSON) or a command (stdout JSON). */
export const meterTargetSchema = z.union([
  z.strictObject({ url: z.string().min(1), headers: z.record(z.string(), z.string()).optional() }),
  z.strictObject({ command: z.array(z.string()).min(1) }),
]);
export type MeterTarget = z.infer<typeof meterTargetSchema>;

export const failureKindSchema = z
  .enum(['rate_limited', 'auth', 'http', 'timeout', 'malformed', 'unreachable', 'command'])
  .describe('rate_limited: the meter answered 429; auth: 401/403; http: another status; timeout: no answer in timeoutMs; malformed: not the expected JSON; unreachable: no connection; command: the meter command failed');
export type FailureKind = z.infer<typeof failureKindSchema>;

export const pollEvents = {
  'poll.configure': z
    .strictObject({
      target: meterTargetSchema.describe('headers are logged by name only: their values are replaced by "…"'),
      intervalMs: z.number().int().positive().describe('between polls while the meter is healthy'),
      timeoutMs: z.number().int().positive().describe('a poll not answered by then is abandoned (a command is killed)'),
      backoff: backoffSchema,
      networkPauseAfterMs: z.number().int().positive().describe('failures (other than 429) for this long pause the queue as network'),
      on429: z.enum(['safe', 'transient']).describe('safe: a 429 from the meter means utilization 0; transient: a failure that backs off but never counts toward the network pause'),
      at: iso,
    })
    .describe('A scheduler run starts polling the meter with these settings; the first poll starts now.'),
  'poll.answered': z
    .strictObject({
      utilization: z.number().min(0).max(100),
      resetsAt: iso.nullable().describe('when the usage window resets, if the meter said'),
      at: iso,
      tookMs: z.number().int().nonnegative(),
    })
    .describe('The meter answered with well-formed usage.'),
  'poll.failed': z
    .strictObject({
      kind: failureKindSchema,
      status: z.number().int().nullable().describe('the HTTP status or the exit code, when there is one'),
      reason: z.string().describe('one line: what was wrong'),
      at: iso,
      tookMs: z.number().int().nonnegative(),
    })
    .describe('A poll failed.'),
  'poll.stop': z.strictObject({ reason: z.string() }).describe('The scheduler stops polling (it is stopping).'),
} as const;

export type PollEvent =
  | ({ type: 'poll.configure' } & z.infer<(typeof pollEvents)['poll.configure']>)
  | ({ type: 'poll.answered' } & z.infer<(typeof pollEvents)['poll.answered']>)
  | ({ type: 'poll.failed' } & z.infer<(typeof pollEvents)['poll.failed']>)
  | ({ type: 'poll.stop' } & z.infer<(typeof pollEvents)['poll.stop']>)
  | { type: 'effect.failed'; effect: string; causeSeq: number; message: string };

export const pollInputSchema = z.strictObject({});
export type PollInput = z.infer<typeof pollInputSchema>;
