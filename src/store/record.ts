import { z } from 'zod';

/**
 * One line of the event log. Every record has the envelope; records that were delivered to a
 * machine as input ("transition records") also carry the state value the machine reached, a
 * hash of that state value and context, and the effects the step asked for — which is what a
 * replay verifies against.
 */

/** An XState state value: a state name, or nested `{ parent: child }` objects for compound states. */
export type StateValue = string | { [key: string]: StateValue };

function isStateValue(value: unknown): value is StateValue {
  if (typeof value === 'string') return true;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  for (const key in value) {
    if (!isStateValue((value as Record<string, unknown>)[key])) return false;
  }
  return true;
}

// A predicate rather than a recursive union: same check, a third of the cost on the read path.
export const stateValueSchema = z.custom<StateValue>(isStateValue, {
  message: 'state must be a state name or an object of state names',
});

/** What a step asked the world to do: a custom action by name, or a timer armed or cancelled. */
export const effectSchema = z.object({
  type: z.string().min(1),
  params: z.unknown().optional(),
});
export type Effect = z.infer<typeof effectSchema>;

export const recordSchema = z.strictObject({
  seq: z.number().int().positive(),
  ts: z.iso.datetime(),
  runId: z.string().min(1),
  epoch: z.number().int().nonnegative(),
  actor: z.string().min(1),
  type: z.string().min(1),
  data: z.unknown(),
  state: stateValueSchema.optional(),
  hash: z.string().regex(/^[0-9a-f]{16}$/).optional(),
  effects: z.array(effectSchema).optional(),
});
export type LogRecord = z.infer<typeof recordSchema>;

/** A record as handed to the writer: the writer assigns `seq`. */
export type NewRecord = Omit<LogRecord, 'seq'>;

/** A record that was an input to a machine, with what the machine did with it. */
export type TransitionRecord = LogRecord & { state: StateValue; hash: string; effects: Effect[] };

export function isTransitionRecord(record: LogRecord): record is TransitionRecord {
  return record.state !== undefined;
}

/** Returns why a parsed record's transition fields are inconsistent, or undefined if they are not. */
export function transitionFieldsProblem(record: LogRecord): string | undefined {
  const present = [record.state, record.hash, record.effects].filter((v) => v !== undefined).length;
  if (present === 0 || present === 3) return undefined;
  return 'a transition record needs all of state, hash and effects';
}

/** The longest line the writer will write and the reader will accept (bytes, newline excluded). */
export const MAX_RECORD_BYTES = 1024 * 1024;
