import { z } from 'zod';

/**
 * The runner's own record types. `run.*` and `log.*` are facts (actor `runner`, no state);
 * `actor.started`, `timer.fired` and `effect.failed` are inputs to a machine and carry the
 * state it reached, like every machine event.
 */

/** The actor id of the runner's own fact records. */
export const RUNNER_ACTOR = 'runner';

export const runnerFactSchemas = {
  /** A runner opened the log: one per process life that writes it. */
  'run.started': z.strictObject({
    pid: z.number().int().positive(),
    hostname: z.string(),
    resumedFromSeq: z.number().int().nonnegative(),
  }),
  /** A runner closed the log cleanly. Its absence before the next `run.started` means a crash. */
  'run.stopped': z.strictObject({ reason: z.string() }),
  /** A torn last line (a crash mid-append) was cut off before appending; its bytes are kept here. */
  'log.tornTail': z.strictObject({
    offset: z.number().int().nonnegative(),
    bytes: z.number().int().positive(),
    text: z.string(),
  }),
} as const;

export const timerEventSchema = z.looseObject({ type: z.string().min(1) });

export const actorInputSchemas = {
  /** An actor was created from a machine with an input; the record holds its initial state. */
  'actor.started': z.strictObject({ machine: z.string().min(1), input: z.unknown() }),
  /** A timer armed by record `armedSeq` came due and its event was delivered. */
  'timer.fired': z.strictObject({
    id: z.string().min(1),
    armedSeq: z.number().int().positive(),
    event: timerEventSchema,
  }),
  /** An effect asked for by record `causeSeq` failed; delivered so the machine can react. */
  'effect.failed': z.strictObject({
    effect: z.string().min(1),
    causeSeq: z.number().int().positive(),
    message: z.string(),
  }),
} as const;

export type RunnerFactType = keyof typeof runnerFactSchemas;
export type ActorInputType = keyof typeof actorInputSchemas;
