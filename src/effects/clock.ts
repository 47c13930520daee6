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

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
