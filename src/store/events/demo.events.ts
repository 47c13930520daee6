import { z } from 'zod';

/** Input of the demo machine: how many pings to try, how long to wait for a reply and between tries. */
export const demoInputSchema = z.strictObject({
  maxAttempts: z.number().int().min(1).max(100).describe('pings to send before giving up'),
  replyTimeoutMs: z.number().int().positive().describe('how long to wait for an answer to each ping'),
  retryDelayMs: z.number().int().nonnegative().describe('pause between an unanswered ping and the next'),
});
export type DemoInput = z.infer<typeof demoInputSchema>;

/** Data of each event the demo machine accepts, by event type. */
export const demoEvents = {
  'demo.start': z.strictObject({}).describe('Begin pinging.'),
  'demo.pong': z
    .strictObject({ attempt: z.number().int().positive().describe('the attempt being answered') })
    .describe('The peer answered a ping; only an answer to the current attempt counts.'),
} as const;

/** Params of each effect the demo machine asks for, by action type: checked on every read of the log. */
export const demoEffects = {
  sendPing: z.strictObject({ attempt: z.number().int().positive() }),
  report: z.strictObject({ outcome: z.enum(['answered', 'gaveUp']), attempts: z.number().int().nonnegative() }),
} as const;

export type DemoEvent =
  | { type: 'demo.start' }
  | { type: 'demo.pong'; attempt: number }
  | { type: 'effect.failed'; effect: string; causeSeq: number; message: string };
