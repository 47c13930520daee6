import { crc32 } from 'node:zlib';
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
  sum: z.string().regex(/^[0-9a-f]{8}$/).optional(),
});
export type LogRecord = z.infer<typeof recordSchema>;

/** A record as handed to the writer: the writer assigns `seq` and `sum`. */
export type NewRecord = Omit<LogRecord, 'seq' | 'sum'>;

/**
 * The record checksum, chained: CRC-32 of the line's bytes before its `,"sum":"…"}` suffix,
 * started from the previous record's sum (0 for the first record of a chain). A record changed
 * anywhere, or removed from between two others, breaks every sum from there on.
 */
export function chainSum(covered: string | Uint8Array, previous: number): number {
  return crc32(covered, previous);
}

/** The sum as the log writes it: 8 lowercase hex digits. */
export function sumHex(sum: number): string {
  return sum.toString(16).padStart(8, '0');
}

/** The sum's suffix on a line: `,"sum":"` + 8 hex digits + `"}` — always the last field. */
export const SUM_SUFFIX_BYTES = 18;
const SUM_FIELD = ',"sum":"';

/** The hex sum at the end of a line, or undefined if the line does not end with a sum field. */
export function trailingSum(line: string): string | undefined {
  const at = line.length - SUM_SUFFIX_BYTES;
  if (at < 1 || !line.endsWith('"}') || !line.startsWith(SUM_FIELD, at)) return undefined;
  const hex = line.slice(at + SUM_FIELD.length, line.length - 2);
  return /^[0-9a-f]{8}$/.test(hex) ? hex : undefined;
}

/** A record that was an input to a machine, with what the machine did with it. */
export type TransitionRecord = LogRecord & { state: StateValue; hash: string; effects: Effect[] };

export function isTransitionRecord(record: LogRecord): record is TransitionRecord {
  return record.state !== undefined;
}

/** Returns why a parsed record's transition fields are inconsistent, or undefined if they are not. */
export function transitionFieldsProblem(record: LogRecord): string | undefined {
  const present = Number(record.state !== undefined) + Number(record.hash !== undefined) + Number(record.effects !== undefined);
  if (present === 0 || present === 3) return undefined;
  return 'a transition record needs all of state, hash and effects';
}

/** The longest line the writer will write and the reader will accept (bytes, newline excluded). */
export const MAX_RECORD_BYTES = 1024 * 1024;

const CANONICAL_TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const HASH = /^[0-9a-f]{16}$/;

/**
 * Why the writer will not append a record, or undefined. The write path's check: a few
 * typeof tests instead of a zod parse (a third of an append's cost), and deliberately
 * narrower than `recordSchema` — `ts` must be the canonical form `Date#toISOString()` gives —
 * so that whatever it lets through the reader accepts; a property test holds it to that.
 */
export function appendProblem(record: LogRecord): string | undefined {
  const { seq, ts, runId, epoch, actor, type } = record;
  if (!Number.isSafeInteger(seq) || seq < 1) return 'seq: expected a positive integer';
  if (typeof ts !== 'string' || !CANONICAL_TS.test(ts) || new Date(ts).toISOString() !== ts) {
    return 'ts: expected an ISO time as Date#toISOString() writes it';
  }
  if (typeof runId !== 'string' || runId === '') return 'runId: expected a non-empty string';
  if (!Number.isSafeInteger(epoch) || epoch < 0) return 'epoch: expected a non-negative integer';
  if (typeof actor !== 'string' || actor === '') return 'actor: expected a non-empty string';
  if (typeof type !== 'string' || type === '') return 'type: expected a non-empty string';
  const transition = transitionFieldsProblem(record);
  if (transition) return transition;
  if (record.state === undefined) return undefined;
  if (!isStateValue(record.state)) return 'state: expected a state name or an object of state names';
  if (typeof record.hash !== 'string' || !HASH.test(record.hash)) return 'hash: expected 16 hex digits';
  if (!Array.isArray(record.effects)) return 'effects: expected an array';
  for (const effect of record.effects as unknown[]) {
    const candidate = effect as Effect | null;
    if (typeof candidate !== 'object' || candidate === null || typeof candidate.type !== 'string' || candidate.type === '') {
      return 'effects: expected objects with a non-empty type';
    }
  }
  return undefined;
}
