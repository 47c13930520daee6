import { z } from 'zod';

/** Input of the demo machine: how many pings to try, how long to wait for a reply and between tries. */
export const demoInputSchema = z.strictObject({
  maxAttempts: z.number().int().min(1).max(100),
  replyTimeoutMs: z.number().int().positive(),
  retryDelayMs: z.number().int().nonnegative(),
});
export type DemoInput = z.infer<typeof demoInputSchema>;

/** Data of each event the demo machine accepts, by event type. */
export const demoEvents = {
  /** Begin pinging. */
  'demo.start': z.strictObject({}),
  /** The peer answered the ping of the given attempt. */
  'demo.pong': z.strictObject({ attempt: z.number().int().positive() }),
} as const;

export type DemoEvent =
  | { type: 'demo.start' }
  | { type: 'demo.pong'; attempt: number }
  | { type: 'effect.failed'; effect: string; causeSeq: number; message: string };
