import { fromCallback, fromPromise, SimulatedClock } from 'xstate';
import type { EffectHandlers, EffectInput } from '../../src/runner/runner.js';
import { readLog } from '../../src/store/logReader.js';

export const DEMO_INPUT = { maxAttempts: 3, replyTimeoutMs: 1_000, retryDelayMs: 500 };

/** A clock that starts at a fixed instant, so logs made in tests have readable dates. */
export function simulatedClock(): SimulatedClock {
  const clock = new SimulatedClock();
  clock.set(Date.parse('2026-11-23T09:00:00.000Z'));
  return clock;
}

export interface PeerLog {
  pings: Array<{ attempt: number; causeSeq: number; causeOnDisk: boolean }>;
  reports: unknown[];
}

/**
 * Effects for the demo machine: a peer that answers pings from `answerFrom` on, and records
 * for each ping whether the record that asked for it was already in the log file.
 */
export function demoEffects(logPath: string, answerFrom: number, peer: PeerLog): EffectHandlers {
  return {
    sendPing: fromCallback(({ input }: { input: EffectInput<{ attempt: number }> }) => {
      const { records } = readLog(logPath);
      const causeOnDisk = records.some((r) => r.seq === input.causeSeq && r.type !== 'run.started');
      peer.pings.push({ attempt: input.params.attempt, causeSeq: input.causeSeq, causeOnDisk });
      if (input.params.attempt >= answerFrom) input.send({ type: 'demo.pong', attempt: input.params.attempt });
    }),
    report: fromPromise(async ({ input }: { input: EffectInput }) => {
      peer.reports.push(input.params);
    }),
  };
}
