import { assign, setup } from 'xstate';
import { leaseEvents, leaseInputSchema, type LeaseEvent, type LeaseInput } from '../store/events/lease.events.js';
import { defineMachine } from './definition.js';

/**
 * The life of one holding of the scheduler lease, as the holder's log records it: acquired,
 * renewed every `renewEveryMs` (each renewal checks the lock file still holds this lockId),
 * released (the record is written, then the lock removed). Waiting for the lease happens before there is a log to write to — only the holder
 * writes the project log — so it is summarised in `lease.acquired` (who blocked us, for how
 * long, whom we took over from). Losing the lease is not an event here either: a holder that
 * finds its lock gone must not write under its old epoch, so the runner's fence halts it and
 * the new holder's `lease.acquired` records the takeover.
 */
export const leaseMachine = setup({
  types: {
    input: {} as LeaseInput,
    context: {} as LeaseInput & { lockId: string | null; epoch: number | null; renewals: number },
    events: {} as LeaseEvent,
  },
  actions: {
    recordHolding: assign(({ event }) =>
      event.type === 'lease.acquired' ? { lockId: event.lockId, epoch: event.epoch } : {},
    ),
    countRenewal: assign({ renewals: ({ context }) => context.renewals + 1 }),
    // Declarations only: the runner maps these to effects.
    renewLease: (_, _params: { lockId: string }) => {},
  },
  delays: {
    renewEvery: ({ context }) => context.renewEveryMs,
    renewRetry: ({ context }) => context.renewRetryMs,
  },
}).createMachine({
  id: 'lease',
  context: ({ input }) => ({ ...input, lockId: null, epoch: null, renewals: 0 }),
  initial: 'idle',
  states: {
    idle: { on: { 'lease.acquired': { target: 'held', actions: 'recordHolding' } } },
    held: {
      after: { renewEvery: 'renewing' },
      on: { 'lease.release': 'released', 'lease.superseded': 'superseded' },
    },
    renewing: {
      entry: { type: 'renewLease', params: ({ context }) => ({ lockId: context.lockId! }) },
      on: {
        'lease.renewed': { target: 'held', actions: 'countRenewal' },
        'lease.renewBusy': 'renewPending',
        'effect.failed': 'renewPending',
        'lease.release': 'released',
        'lease.superseded': 'superseded',
      },
    },
    renewPending: {
      after: { renewRetry: 'renewing' },
      on: { 'lease.release': 'released', 'lease.superseded': 'superseded' },
    },
    // The lock file is removed after this record and the run's last one are written: a holder
    // writes nothing once the lock is gone.
    released: { type: 'final' },
    // A holder that died holding the lease: the next holder that resumes the log closes it.
    superseded: { type: 'final' },
  },
});

export const leaseDefinition = defineMachine({
  name: 'lease',
  machine: leaseMachine,
  input: leaseInputSchema,
  events: leaseEvents,
});
