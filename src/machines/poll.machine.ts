import { assign, enqueueActions, setup } from 'xstate';
import { pollEvents, pollInputSchema, type Backoff, type FailureKind, type PollEvent, type PollInput } from '../store/events/poll.events.js';
import { defineMachine } from './definition.js';

type Configure = Extract<PollEvent, { type: 'poll.configure' }>;

export interface PollContext {
  settings: Omit<Configure, 'type' | 'at'> | null;
  /** Failures in a row, of any kind: the backoff's exponent. */
  failures: number;
  /** When the current run of failures other than 429 began: the network pause counts from here. */
  streakSince: string | null;
  lastPoll: { at: string; ok: boolean; utilization: number | null; resetsAt: string | null; kind: FailureKind | null; status: number | null; reason: string | null } | null;
  lastOk: { at: string; utilization: number; resetsAt: string | null } | null;
  /** The pause this loop asked the queue for, if any. */
  pausedAs: 'auth' | 'network' | null;
  /** The wait before the next poll, and when that is. */
  delayMs: number;
  nextPollAt: string | null;
}

/** The n-th wait of a backoff (n ≥ 1): initialMs · factor^(n−1), at most maxMs. */
export function backoffDelay(backoff: Backoff, n: number): number {
  return Math.min(backoff.maxMs, Math.round(backoff.initialMs * backoff.factor ** Math.max(0, n - 1)));
}

const plus = (iso: string, ms: number) => new Date(Date.parse(iso) + ms).toISOString();

/** The queue's effects, typed (xstate cannot type actions enqueued within the same setup). */
interface PollEffects {
  reportUsage: { utilization: number; resetsAt: string | null; at: string };
  pauseQueue: { reason: 'auth' | 'network'; message: string; at: string };
  clearQueuePause: { reason: 'auth' | 'network'; at: string };
}
function effect<K extends keyof PollEffects>(type: K, params: PollEffects[K]): never {
  return { type, params } as never;
}

/**
 * The usage meter's poll loop, one poll at a time:
 *
 *   stopped → polling ⇄ waiting     (answered: next poll after intervalMs)
 *                     ⇄ backingOff  (failed: next poll after initialMs · factor^(n−1), at most maxMs)
 *
 * A meter 429 is, by `on429`, either `safe` (utilization 0, the seed's rule — which can fire
 * exactly when the account is limited) or `transient` (the default: a failure that backs off and
 * tells the queue nothing, and never counts toward the network pause). 401/403 pause the queue
 * as `auth`; failures other than 429 for `networkPauseAfterMs` in a row pause it as `network`; an
 * answer clears the pause this loop asked for. The next poll is only ever armed once the last
 * one has answered or failed (the effect enforces its own timeout), so the meter never runs twice
 * at once.
 */
export const pollMachine = setup({
  types: {
    input: {} as PollInput,
    context: {} as PollContext,
    events: {} as PollEvent,
  },
  actions: {
    configure: assign(({ event }) => {
      if (event.type !== 'poll.configure') return {};
      const { type: _type, at: _at, ...settings } = event;
      return { settings, nextPollAt: null };
    }),
    answered: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'poll.answered' || !context.settings) return;
      const delayMs = context.settings.intervalMs;
      enqueue.assign({
        failures: 0,
        streakSince: null,
        lastPoll: { at: event.at, ok: true, utilization: event.utilization, resetsAt: event.resetsAt, kind: null, status: null, reason: null },
        lastOk: { at: event.at, utilization: event.utilization, resetsAt: event.resetsAt },
        pausedAs: null,
        delayMs,
        nextPollAt: plus(event.at, delayMs),
      });
      if (context.pausedAs) enqueue(effect('clearQueuePause', { reason: context.pausedAs, at: event.at }));
      enqueue(effect('reportUsage', { utilization: event.utilization, resetsAt: event.resetsAt, at: event.at }));
    }),
    safe429: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'poll.failed' || !context.settings) return;
      const delayMs = context.settings.intervalMs;
      const resetsAt = context.lastOk?.resetsAt ?? null;
      enqueue.assign({
        failures: 0,
        lastPoll: { at: event.at, ok: true, utilization: 0, resetsAt, kind: 'rate_limited', status: event.status, reason: `${event.reason} (on429: safe → utilization 0)` },
        delayMs,
        nextPollAt: plus(event.at, delayMs),
      });
      enqueue(effect('reportUsage', { utilization: 0, resetsAt, at: event.at }));
    }),
    failed: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'poll.failed' || !context.settings) return;
      const failures = context.failures + 1;
      const delayMs = backoffDelay(context.settings.backoff, failures);
      const counts = event.kind !== 'rate_limited';
      const streakSince = counts ? (context.streakSince ?? event.at) : context.streakSince;
      let pausedAs = context.pausedAs;
      if (event.kind === 'auth' && pausedAs !== 'auth') {
        pausedAs = 'auth';
        enqueue(effect('pauseQueue', { reason: 'auth', message: `usage meter: ${event.reason}`, at: event.at }));
      } else if (counts && pausedAs === null && streakSince !== null && Date.parse(event.at) - Date.parse(streakSince) >= context.settings.networkPauseAfterMs) {
        pausedAs = 'network';
        enqueue(effect('pauseQueue', { reason: 'network', message: `usage meter failing since ${streakSince}: ${event.reason}`, at: event.at }));
      }
      enqueue.assign({
        failures,
        streakSince,
        pausedAs,
        lastPoll: { at: event.at, ok: false, utilization: null, resetsAt: null, kind: event.kind, status: event.status, reason: event.reason },
        delayMs,
        nextPollAt: plus(event.at, delayMs),
      });
    }),
    // Declarations only: the runner maps these to effects.
    pollMeter: (_, _params: { timeoutMs: number }) => {},
    reportUsage: (_, _params: PollEffects['reportUsage']) => {},
    pauseQueue: (_, _params: PollEffects['pauseQueue']) => {},
    clearQueuePause: (_, _params: PollEffects['clearQueuePause']) => {},
  },
  guards: {
    safe429: ({ context, event }) => event.type === 'poll.failed' && event.kind === 'rate_limited' && context.settings?.on429 === 'safe',
  },
  delays: {
    pollInterval: ({ context }) => context.delayMs,
    pollBackoff: ({ context }) => context.delayMs,
  },
}).createMachine({
  id: 'poll',
  context: () => ({ settings: null, failures: 0, streakSince: null, lastPoll: null, lastOk: null, pausedAs: null, delayMs: 0, nextPollAt: null }),
  initial: 'stopped',
  on: {
    // A new run: whatever poll an earlier run had in flight died with it; poll now.
    'poll.configure': { target: '.polling', reenter: true, actions: 'configure' },
    'poll.stop': { target: '.stopped' },
  },
  states: {
    stopped: {},
    polling: {
      entry: { type: 'pollMeter', params: ({ context }) => ({ timeoutMs: context.settings?.timeoutMs ?? 1 }) },
      on: {
        'poll.answered': { target: 'waiting', actions: 'answered' },
        'poll.failed': [
          { guard: 'safe429', target: 'waiting', actions: 'safe429' },
          { target: 'backingOff', actions: 'failed' },
        ],
        // The effect itself broke (not the meter): back off like any failure.
        'effect.failed': { target: 'backingOff', actions: assign(({ context }) => ({ failures: context.failures + 1, delayMs: context.settings ? backoffDelay(context.settings.backoff, context.failures + 1) : 1 })) },
      },
    },
    waiting: { after: { pollInterval: 'polling' } },
    backingOff: { after: { pollBackoff: 'polling' } },
  },
});

export const pollDefinition = defineMachine({
  name: 'poll',
  machine: pollMachine,
  input: pollInputSchema,
  events: pollEvents,
});
