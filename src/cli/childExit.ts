import type { GuardedCommand } from '../effects/guardedCommand.js';

const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

/**
 * Passes SIGINT, SIGTERM and SIGHUP sent to warden on to CMD, as flock(1) does, until stopped;
 * remembers the last one passed on.
 */
export function forwardSignals(child: GuardedCommand): { stop: () => void; signalled: () => NodeJS.Signals | undefined } {
  let last: NodeJS.Signals | undefined;
  const forward = (signal: NodeJS.Signals) => {
    last = signal;
    child.signal(signal);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, forward);
  return {
    stop: () => {
      for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(signal, forward);
    },
    signalled: () => last,
  };
}

/** Warden's exit code for CMD's end: CMD's code, or 128 + n for a signal (the one passed on, if any). */
export function exitCodeOf(result: { exitCode: number | undefined; signal: string | undefined }, forwarded?: NodeJS.Signals): number {
  if (forwarded) return 128 + (SIGNAL_NUMBERS[forwarded] ?? 0);
  return result.exitCode ?? 128 + (SIGNAL_NUMBERS[result.signal ?? ''] ?? 0);
}
