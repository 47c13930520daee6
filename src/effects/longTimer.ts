/**
 * Timers of any length. Node keeps a timer's delay in a signed 32-bit int: a delay of 2^31 ms
 * (about 24.8 days) or more is clamped to 1 ms, with only a `TimeoutOverflowWarning` on stderr —
 * so a `maxDurationMs` of 600 h would kill its job at once. Every configurable wait goes through
 * here: a long one is armed in steps of at most {@link MAX_TIMER_MS}.
 */

/** The longest delay one Node timer holds: 2^31 − 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The primitive timers the steps are armed on (Node's own unless a test gives a fake). */
export interface StepTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const nodeTimers: StepTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** A pending long timer. */
export interface LongTimeout {
  clear(): void;
}

/**
 * Calls `fn` once `ms` have passed (a negative or NaN `ms` counts as 0), arming steps of at most
 * {@link MAX_TIMER_MS}; `clear()` stops it.
 * @example const timer = setLongTimeout(() => kill(), 600 * 3_600_000); … timer.clear();
 */
export function setLongTimeout(fn: () => void, ms: number, timers: StepTimers = nodeTimers): LongTimeout {
  let left = ms > 0 ? ms : 0;
  let cleared = false;
  let handle: unknown;
  const arm = () => {
    const step = Math.min(left, MAX_TIMER_MS);
    handle = timers.setTimeout(() => {
      left -= step;
      if (cleared) return;
      if (left > 0) arm();
      else fn();
    }, step);
  };
  arm();
  return {
    clear: () => {
      cleared = true;
      timers.clearTimeout(handle);
    },
  };
}

/** Clears a {@link LongTimeout} that may not have been armed. */
export function clearLongTimeout(timer: LongTimeout | undefined): void {
  timer?.clear();
}
