import { z } from 'zod';

/**
 * The runner's own record types. `run.*` and `log.*` are facts (actor `runner`, no state);
 * `actor.started`, `timer.fired` and `effect.failed` are inputs to a machine and carry the
 * state it reached, like every machine event. Descriptions feed docs/events.md.
 */

/** The actor id of the runner's own fact records. */
export const RUNNER_ACTOR = 'runner';

export const runnerFactSchemas = {
  'run.started': z
    .strictObject({
      pid: z.number().int().positive().describe('process id of the writer'),
      hostname: z.string().describe('host the writer runs on'),
      resumedFromSeq: z.number().int().nonnegative().describe('last seq already in the log when this run opened it (0: a new log)'),
    })
    .describe('A runner opened the log: one per process life that writes it. Its runId and epoch are on every record it writes.'),
  'run.stopped': z
    .strictObject({ reason: z.string().describe('why the runner closed') })
    .describe('A runner closed the log cleanly. A run.started with no run.stopped before the next one means that run crashed.'),
  'log.tornTail': z
    .strictObject({
      offset: z.number().int().nonnegative().describe('byte offset where the torn line began'),
      bytes: z.number().int().positive().describe('length of the torn line in bytes'),
      text: z.string().describe('the torn bytes as text (at most 64 KiB), kept as evidence'),
    })
    .describe('A torn last line (a crash mid-append, never committed) was cut off before this run appended; its bytes are kept here.'),
} as const;

export const timerEventSchema = z.looseObject({ type: z.string().min(1) });

export const actorInputSchemas = {
  'actor.started': z
    .strictObject({
      machine: z.string().min(1).describe('name of the machine (part of the log format)'),
      input: z.unknown().optional().describe("the machine's input, checked by its schema (absent: undefined)"),
    })
    .describe('An actor was created from a machine with an input; the record holds its initial state and entry effects.'),
  'timer.fired': z
    .strictObject({
      id: z.string().min(1).describe('timer id (for `after` delays: xstate.after.<delay>.<state id>)'),
      armedSeq: z.number().int().positive().describe('seq of the record whose timer.arm effect armed it'),
      event: timerEventSchema.describe('the event delivered to the machine'),
    })
    .describe('A timer came due and its event was delivered. Each arming fires at most once, also across resumes.'),
  'effect.failed': z
    .strictObject({
      effect: z.string().min(1).describe('the custom action type whose effect failed'),
      causeSeq: z.number().int().positive().describe('seq of the record that asked for the effect'),
      message: z.string().describe('what went wrong'),
    })
    .describe('An effect failed (or has no handler); delivered to the machine so failure can be a state.'),
} as const;

export type RunnerFactType = keyof typeof runnerFactSchemas;
export type ActorInputType = keyof typeof actorInputSchemas;
