import type { Effect, LogRecord, StateValue } from '../store/record.js';
import type { ActorState } from '../runner/replayer.js';
import type { PendingTimer } from '../runner/timerBook.js';

/** A state value as one word: `running.resultSeen` for nested states, JSON for parallel ones. */
export function formatState(value: StateValue): string {
  if (typeof value === 'string') return value;
  const keys = Object.keys(value);
  if (keys.length === 1) return `${keys[0]}.${formatState(value[keys[0]!]!)}`;
  return JSON.stringify(value);
}

function formatEffect(effect: Effect): string {
  const params = effect.params as Record<string, unknown> | undefined;
  if (effect.type === 'timer.arm') return `arm ${String(params?.id)} +${String(params?.delayMs)}ms`;
  if (effect.type === 'timer.cancel') return `cancel ${String(params?.id)}`;
  return params === undefined ? effect.type : `${effect.type} ${JSON.stringify(params)}`;
}

function isEmptyObject(value: unknown): boolean {
  return value !== null && typeof value === 'object' && Object.keys(value).length === 0;
}

/**
 * One readable line per record:
 * `3  2026-11-23T09:00:00.000Z  demo  demo.start  → pinging  · sendPing {"attempt":1}`
 */
export function formatRecord(record: LogRecord): string {
  const parts = [String(record.seq).padStart(5), record.ts, record.actor, record.type];
  if (record.data !== undefined && !isEmptyObject(record.data)) parts.push(JSON.stringify(record.data));
  if (record.state !== undefined) parts.push(`→ ${formatState(record.state)}`);
  let line = parts.join('  ');
  for (const effect of record.effects ?? []) line += `  · ${formatEffect(effect)}`;
  return line;
}

export function formatActor(actor: ActorState): string {
  const status = actor.snapshot.status === 'done' ? ' (final)' : '';
  return `${actor.id}  [${actor.machine}]  ${formatState(actor.snapshot.value as StateValue)}${status}  ${JSON.stringify(actor.snapshot.context)}  (last seq ${actor.lastSeq})`;
}

export function formatTimer(timer: PendingTimer): string {
  return `timer ${timer.id} of ${timer.actor} due ${new Date(timer.dueAt).toISOString()} (armed at seq ${timer.armedSeq})`;
}
