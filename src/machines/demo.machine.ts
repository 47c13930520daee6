import { assign, setup } from 'xstate';
import { demoEffects, demoEvents, demoInputSchema, type DemoEvent, type DemoInput } from '../store/events/demo.events.js';
import { defineMachine } from './definition.js';

/**
 * The demo machine: ping a peer, wait for its answer, retry a bounded number of times.
 * Small on purpose, it uses everything the runner must carry through the log — a custom effect
 * (`sendPing`), named delays computed from context, guards, a timer cancelled by an answer,
 * an effect failure handled as a state, and final states — so it backs the shipped example
 * log and the runner's own tests.
 */
export const demoMachine = setup({
  types: {
    input: {} as DemoInput,
    context: {} as DemoInput & { attempt: number },
    events: {} as DemoEvent,
  },
  actions: {
    countAttempt: assign({ attempt: ({ context }) => context.attempt + 1 }),
    // Declarations only: the runner maps these to effects.
    sendPing: (_, _params: { attempt: number }) => {},
    report: (_, _params: { outcome: 'answered' | 'gaveUp'; attempts: number }) => {},
  },
  guards: {
    attemptsLeft: ({ context }) => context.attempt < context.maxAttempts,
    answersCurrentAttempt: ({ context, event }) => event.type === 'demo.pong' && event.attempt === context.attempt,
  },
  delays: {
    replyTimeout: ({ context }) => context.replyTimeoutMs,
    retryDelay: ({ context }) => context.retryDelayMs,
  },
}).createMachine({
  id: 'demo',
  context: ({ input }) => ({ ...input, attempt: 0 }),
  initial: 'idle',
  states: {
    idle: { on: { 'demo.start': 'pinging' } },
    pinging: {
      entry: ['countAttempt', { type: 'sendPing', params: ({ context }) => ({ attempt: context.attempt }) }],
      on: {
        'demo.pong': { guard: 'answersCurrentAttempt', target: 'answered' },
        'effect.failed': [{ guard: 'attemptsLeft', target: 'waiting' }, { target: 'gaveUp' }],
      },
      after: { replyTimeout: [{ guard: 'attemptsLeft', target: 'waiting' }, { target: 'gaveUp' }] },
    },
    waiting: { after: { retryDelay: 'pinging' } },
    answered: {
      type: 'final',
      entry: { type: 'report', params: ({ context }) => ({ outcome: 'answered' as const, attempts: context.attempt }) },
    },
    gaveUp: {
      type: 'final',
      entry: { type: 'report', params: ({ context }) => ({ outcome: 'gaveUp' as const, attempts: context.attempt }) },
    },
  },
});

export const demoDefinition = defineMachine({
  name: 'demo',
  machine: demoMachine,
  input: demoInputSchema,
  events: demoEvents,
  effects: demoEffects,
});
