import { setLongTimeout, type LongTimeout } from './longTimer.js';

/**
 * Where the runner reads time and arms timers. Machines never read a clock: the runner stamps
 * records with `now()` and turns delays into timers here. xstate's `SimulatedClock` fits this
 * interface, so tests move time by hand.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The system clock; a delay of 2^31 ms or more is armed in steps (longTimer.ts), never clamped. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setLongTimeout(fn, ms),
  clearTimeout: (handle) => (handle as LongTimeout | undefined)?.clear(),
};
