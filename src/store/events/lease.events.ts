import { z } from 'zod';

/** Input of a lease actor (one per acquisition, named `lease:<epoch>`). */
export const leaseInputSchema = z.strictObject({
  ownerId: z.string().min(1).describe('the owner key the lease was taken under'),
  renewEveryMs: z.number().int().positive().describe('how often the holder renews (a third of the lease TTL)'),
  renewRetryMs: z.number().int().positive().describe('how soon to try again when a renewal met a claim in progress'),
});
export type LeaseInput = z.infer<typeof leaseInputSchema>;

const holderSchema = z.strictObject({
  ownerId: z.string().nullable(),
  pid: z.unknown(),
  hostname: z.string().nullable(),
  epoch: z.number().int().nullable(),
});

/** Data of each event the lease machine accepts, by event type. */
export const leaseEvents = {
  'lease.acquired': z
    .strictObject({
      lockId: z.string().min(1).describe('nonce of this acquisition, as in the lock file'),
      epoch: z.number().int().positive().describe('fencing token: greater than every earlier holder\'s'),
      pid: z.number().int().positive(),
      hostname: z.string(),
      acquiredAt: z.iso.datetime(),
      predecessor: holderSchema
        .extend({ reason: z.string().describe('why the previous lock was judged stale or corrupt') })
        .nullable()
        .describe('the lock taken over, if any'),
      waitedMs: z.number().int().nonnegative().describe('time spent waiting for the lease'),
      blockedBy: z.array(holderSchema).describe('each holder seen while waiting, once'),
    })
    .describe('This process holds the lease. Written first by every new holder.'),
  'lease.renewed': z
    .strictObject({ renewedAt: z.iso.datetime() })
    .describe('The lock file still held this lockId and its renewedAt was moved on.'),
  'lease.renewBusy': z
    .strictObject({})
    .describe('Another process was claiming the lock at the moment of renewal; it is tried again shortly.'),
  'lease.release': z
    .strictObject({ reason: z.string().describe('normal exit, a signal, an uncaught error …') })
    .describe('The holder is letting the lease go: its last records follow, then the lock file is removed.'),
  'lease.superseded': z
    .strictObject({ byEpoch: z.number().int().positive().describe('the epoch of the holder that took over') })
    .describe('A later holder found this holding unfinished in the log (its process died holding it) and closed it.'),
} as const;

export type LeaseEvent =
  | { type: 'lease.acquired'; lockId: string; epoch: number }
  | { type: 'lease.renewed'; renewedAt: string }
  | { type: 'lease.renewBusy' }
  | { type: 'lease.release'; reason: string }
  | { type: 'lease.superseded'; byEpoch: number }
  | { type: 'effect.failed'; effect: string; causeSeq: number; message: string };
