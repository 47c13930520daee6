import { describe, expect, it } from 'vitest';
import { initialTransition, transition, type AnyMachineSnapshot } from 'xstate';
import { jobMachine, verdict, type JobContext } from '../../src/machines/job.machine.js';
import type { JobInput } from '../../src/store/events/job.events.js';

const INPUT: JobInput = {
  jobId: 'j-1',
  slug: 'fix-login',
  command: ['agent', '-p'],
  cwd: '/work',
  prompt: null,
  outputLog: '/work/.warden/runs/r/fix-login.log',
  metaPath: '/work/.warden/runs/r/fix-login.meta.json',
  env: {},
  timeouts: { maxDurationMs: 7_200_000, postResultGraceMs: 90_000, killAfterMs: 30_000, idleOutputMs: 1_200_000 },
};
const T0 = '2026-11-23T10:00:00.000Z';
const T1 = '2026-11-23T10:05:00.000Z';
const RESULT = { subtype: 'success', isError: false, durationMs: 1234, costUsd: 0.42, usage: { input_tokens: 10 }, apiErrorStatus: null, bytes: 300 };

type Ev = { type: string } & Record<string, unknown>;
/** Steps the machine through events; returns the last snapshot and every step's action list, summarised. */
function run(events: Ev[], from?: AnyMachineSnapshot) {
  let [snapshot, acts] = from ? [from, []] : initialTransition(jobMachine, INPUT);
  const steps: string[][] = [summarise(acts)];
  for (const event of events) {
    [snapshot, acts] = transition(jobMachine, snapshot as never, event as never);
    steps.push(summarise(acts));
  }
  return { snapshot: snapshot as AnyMachineSnapshot & { context: JobContext }, steps, last: steps[steps.length - 1]! };
}
function summarise(list: ReadonlyArray<{ type: string; params?: unknown }>): string[] {
  return list
    .filter((a) => !a.type.startsWith('xstate.assign'))
    .map((a) => {
      const p = a.params as Record<string, unknown> | undefined;
      if (a.type === 'xstate.raise') return `arm ${String(p?.id).replace('xstate.after.', '')} +${String(p?.delay)}`;
      if (a.type === 'xstate.cancel') return `cancel ${String(p?.sendId).replace('xstate.after.', '')}`;
      if (a.type === 'signalJob') return `signalJob ${String(p?.signal)}`;
      return a.type;
    });
}
const timer = (name: string, path: string) => ({ type: `xstate.after.${name}.${path}` });
const started: Ev[] = [{ type: 'job.start' }, { type: 'job.spawned', pid: 4242, startedAt: T0 }];
const exited = (exitCode: number | null, signal: string | null = null): Ev => ({ type: 'job.exited', exitCode, signal, at: T1 });
const reaped: Ev = { type: 'job.reaped', killed: [], survivors: [] };
const metaWritten: Ev = { type: 'job.metaWritten', path: INPUT.metaPath };

describe('the job machine', () => {
  it('spawns on start, then runs under maxDuration and idle timers', () => {
    const { snapshot, steps } = run(started);
    expect(steps[1]).toEqual(['spawnJob']);
    expect(snapshot.value).toEqual({ alive: 'running' });
    expect(steps[2]).toEqual(['arm maxDuration.job.alive +7200000', 'arm idleOutput.job.alive.running +1200000']);
    expect(snapshot.context).toMatchObject({ pid: 4242, startedAt: T0 });
  });

  it('output restarts the idle timer (and only that); a result moves to grace with its own timer', () => {
    const { snapshot, steps } = run([...started, { type: 'job.firstOutput', at: T0 }, { type: 'job.output', lines: 3, bytes: 90 }, { type: 'job.resultSeen', ...RESULT }]);
    expect(steps[4]).toEqual(['cancel idleOutput.job.alive.running', 'arm idleOutput.job.alive.running +1200000']);
    expect(steps[5]).toEqual(['cancel idleOutput.job.alive.running', 'arm postResultGrace.job.alive.grace +90000']);
    expect(snapshot.value).toEqual({ alive: 'grace' });
    expect(snapshot.context).toMatchObject({ outputLines: 3, outputBytes: 90, firstOutputAt: T0, result: RESULT });
  });

  it('completes when the agent exits 0 after a successful result: reaps leftovers, writes meta', () => {
    const { snapshot, steps } = run([...started, { type: 'job.resultSeen', ...RESULT }, exited(0), reaped, metaWritten]);
    expect(steps[4]).toEqual(['cancel postResultGrace.job.alive.grace', 'cancel maxDuration.job.alive', 'reapJob']);
    expect(steps[5]).toEqual(['writeMeta']);
    expect(snapshot.value).toBe('completed');
    expect(snapshot.context).toMatchObject({ outcome: 'completed', mappedFromSignal: false, reason: 'result: success, exit 0' });
  });

  it('post-result grace: SIGTERM, then SIGKILL after killAfter; the kill maps to completed', () => {
    const grace = run([...started, { type: 'job.resultSeen', ...RESULT }]).snapshot;
    const { snapshot, steps } = run(
      [timer('postResultGrace', 'job.alive.grace'), { type: 'job.signalled', signal: 'SIGTERM', pids: [4242, 4243] }, timer('killAfter', 'job.terminating'), exited(null, 'SIGKILL'), reaped, metaWritten],
      grace,
    );
    expect(steps[1]).toEqual(['cancel postResultGrace.job.alive.grace', 'cancel maxDuration.job.alive', 'signalJob SIGTERM', 'arm killAfter.job.terminating +30000']);
    expect(steps[3]).toEqual(['cancel killAfter.job.terminating', 'signalJob SIGKILL', 'arm killAfter.job.killing +30000']);
    expect(snapshot.value).toBe('completed');
    expect(snapshot.context).toMatchObject({ killedBy: 'postResult', mappedFromSignal: true, signalled: { SIGTERM: [4242, 4243] } });
  });

  it.each([
    ['idleOutput', 'job.alive.running', 'idle'],
    ['maxDuration', 'job.alive', 'maxDuration'],
  ])('the %s watchdog terminates a job with no result: failed, killedBy %s', (name, path, killedBy) => {
    const { snapshot } = run([...started, timer(name, path), exited(143), reaped, metaWritten]);
    expect(snapshot.value).toBe('failed');
    expect(snapshot.context.killedBy).toBe(killedBy);
    expect(snapshot.context.reason).toMatch(/^exit 143; killed: /);
  });

  it('cancel: terminates a running job; before it starts, it just ends failed', () => {
    expect(run([...started, { type: 'job.cancel', reason: 'user asked' }, exited(null, 'SIGTERM'), reaped, metaWritten]).snapshot.context).toMatchObject({
      killedBy: 'user',
      outcome: 'failed',
      reason: 'killed by SIGTERM; killed: cancelled: user asked',
    });
    const before = run([{ type: 'job.cancel', reason: 'queue stopped' }, metaWritten]);
    expect(before.steps[1]).toEqual(['writeMeta']);
    expect(before.snapshot.value).toBe('failed');
    // Cancelled while spawning: terminated as soon as it is there.
    const racing = run([{ type: 'job.start' }, { type: 'job.cancel', reason: 'x' }, { type: 'job.spawned', pid: 7, startedAt: T0 }]);
    expect(racing.snapshot.value).toBe('terminating');
  });

  it('a spawn failure (or a failed spawn effect) ends failed with the reason', () => {
    const { snapshot } = run([{ type: 'job.start' }, { type: 'job.spawnFailed', reason: 'command not found: nope', at: T0 }, metaWritten]);
    expect(snapshot.value).toBe('failed');
    expect(snapshot.context.reason).toBe('spawn failed: command not found: nope');
    const viaEffect = run([{ type: 'job.start' }, { type: 'effect.failed', effect: 'spawnJob', causeSeq: 3, message: 'EACCES' }, metaWritten]);
    expect(viaEffect.snapshot.context.reason).toBe('spawn failed: EACCES');
  });

  it('a structured rate limit without a successful result defers; with one, the job still completes', () => {
    const limited = run([...started, { type: 'job.rateLimited', resetsAt: T1, source: 'rate_limit_event' }, { type: 'job.resultSeen', ...RESULT, subtype: 'error_during_execution', isError: true }, exited(1), reaped, metaWritten]);
    expect(limited.snapshot.value).toBe('deferred');
    expect(limited.snapshot.context.reason).toBe(`rate limited (rate_limit_event) until ${T1}`);
    const api429 = run([...started, { type: 'job.resultSeen', ...RESULT, isError: true, subtype: 'error', apiErrorStatus: 429 }, exited(1), reaped, metaWritten]);
    expect(api429.snapshot.value).toBe('deferred');
    const fine = run([...started, { type: 'job.rateLimited', resetsAt: T1, source: 'rate_limit_event' }, { type: 'job.resultSeen', ...RESULT }, exited(0), reaped, metaWritten]);
    expect(fine.snapshot.value).toBe('completed');
  });

  it('a plain command: exit 0 completes, anything else fails; an error result fails even with exit 0', () => {
    expect(run([...started, exited(0), reaped, metaWritten]).snapshot.value).toBe('completed');
    expect(run([...started, exited(3), reaped, metaWritten]).snapshot.context.reason).toBe('exit 3');
    const error = run([...started, { type: 'job.resultSeen', ...RESULT, subtype: 'error_max_turns', isError: true }, exited(0), reaped, metaWritten]);
    expect(error.snapshot.value).toBe('failed');
    expect(error.snapshot.context.reason).toBe('result: error_max_turns (error); exit 0');
  });

  it('a kill without a successful result is not mapped', () => {
    const c = run([...started, exited(137), reaped]).snapshot.context;
    expect(verdict(c)).toEqual({ outcome: 'failed', reason: 'exit 137', mappedFromSignal: false });
  });

  it('writes meta from the log alone: what it records, durations from logged times', () => {
    const { steps, snapshot } = run([...started, { type: 'job.resultSeen', ...RESULT }, exited(0), { type: 'job.reaped', killed: [99], survivors: [] }]);
    expect(steps[steps.length - 1]).toEqual(['writeMeta']);
    const [, acts] = transition(jobMachine, run([...started, { type: 'job.resultSeen', ...RESULT }, exited(0)]).snapshot as never, { type: 'job.reaped', killed: [99], survivors: [] } as never);
    const write = acts.find((a) => a.type === 'writeMeta')!.params as { path: string; meta: Record<string, unknown> };
    expect(write.path).toBe(INPUT.metaPath);
    expect(write.meta).toEqual({
      jobId: 'j-1', slug: 'fix-login', cwd: '/work', outcome: 'completed', reason: 'result: success, exit 0', exitCode: 0, signal: null,
      resultSubtype: 'success', isError: false, mappedFromSignal: false, startedAt: T0, finishedAt: T1, durationMs: 300_000,
      killedBy: null, costUsd: 0.42, usage: { input_tokens: 10 }, rateLimitResetsAt: null, leftovers: { killed: [99], survivors: [] },
    });
    expect(snapshot.value).toBe('finishing');
  });

  it('interrupting: a later interrupt (the run that was reaping died) asks for the reap again, and the job still ends', () => {
    // Run 1 dies with the job alive; run 2 interrupts it and dies before job.reaped; run 3 interrupts again.
    const interrupting = run([...started, { type: 'job.interrupt', reason: 'its scheduler (run r1) ended while it ran' }]);
    expect(interrupting.snapshot.value).toBe('interrupting');
    expect(interrupting.last).toContain('reapJob');
    const again = run([{ type: 'job.interrupt', reason: 'its scheduler (run r2) ended while it ran' }], interrupting.snapshot);
    expect(again.snapshot.value).toBe('interrupting');
    expect(again.last).toEqual(['reapJob']);
    const root = (transition(jobMachine, interrupting.snapshot as never, { type: 'job.interrupt', reason: 'r2' } as never)[1].find((a) => a.type === 'reapJob')!.params) as { jobId: string; root: unknown };
    expect(root).toEqual({ jobId: 'j-1', root: { pid: 4242, pidStartTime: null } });
    const ended = run([reaped, metaWritten], again.snapshot);
    expect(ended.snapshot.value).toBe('interrupted');
    expect(ended.snapshot.context.reason).toMatch(/^interrupted: /);
  });
});
