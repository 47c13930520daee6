import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fromPromise } from 'xstate';
import { demoDefinition } from '../../src/machines/demo.machine.js';
import { Runner } from '../../src/runner/runner.js';
import { replayLog } from '../../src/runner/replay.js';
import { readLog } from '../../src/store/logReader.js';
import { DEMO_INPUT, demoEffects, simulatedClock, type PeerLog } from '../helpers/demo.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();

function typesAndStates(path: string) {
  return readLog(path).records.map((r) => [r.type, r.state ?? null]);
}

describe('the runner', () => {
  it('logs every input with the state it reached, and runs effects only after their record is on disk', () => {
    const log = join(tempDir(), 'events.jsonl');
    const clock = simulatedClock();
    const peer: PeerLog = { pings: [], reports: [] };
    const runner = Runner.open({ log, machines: [demoDefinition], effects: demoEffects(log, 2, peer), clock });
    runner.start('demo', 'demo', DEMO_INPUT);
    runner.send('demo', { type: 'demo.start' });
    expect(runner.state('demo')).toBe('pinging');

    clock.increment(DEMO_INPUT.replyTimeoutMs);
    expect(runner.state('demo')).toBe('waiting');
    clock.increment(DEMO_INPUT.retryDelayMs);
    expect(runner.state('demo')).toBe('answered');
    runner.close('test done');

    expect(typesAndStates(log)).toEqual([
      ['run.started', null],
      ['actor.started', 'idle'],
      ['demo.start', 'pinging'],
      ['timer.fired', 'waiting'],
      ['timer.fired', 'pinging'],
      ['demo.pong', 'answered'],
      ['run.stopped', null],
    ]);
    expect(peer.pings).toEqual([
      { attempt: 1, causeSeq: 3, causeOnDisk: true },
      { attempt: 2, causeSeq: 5, causeOnDisk: true },
    ]);
    expect(peer.reports).toEqual([{ outcome: 'answered', attempts: 2 }]);
  });

  it('records timers as arm and cancel effects with their due time', () => {
    const log = join(tempDir(), 'events.jsonl');
    const clock = simulatedClock();
    const start = clock.now();
    const runner = Runner.open({ log, machines: [demoDefinition], effects: demoEffects(log, 1, { pings: [], reports: [] }), clock });
    runner.start('demo', 'demo', DEMO_INPUT);
    runner.send('demo', { type: 'demo.start' });
    runner.close();
    const [, , begin, pong] = readLog(log).records;
    expect(begin?.effects).toEqual([
      { type: 'sendPing', params: { attempt: 1 } },
      {
        type: 'timer.arm',
        params: { id: 'xstate.after.replyTimeout.demo.pinging', event: { type: 'xstate.after.replyTimeout.demo.pinging' }, delayMs: 1000, dueAt: start + 1000 },
      },
    ]);
    expect(pong?.effects).toEqual([
      { type: 'timer.cancel', params: { id: 'xstate.after.replyTimeout.demo.pinging' } },
      { type: 'report', params: { outcome: 'answered', attempts: 1 } },
    ]);
    expect(runner.pendingTimers()).toEqual([]);
  });

  it('handles inputs an effect sends during a step after that step, in arrival order', () => {
    const log = join(tempDir(), 'events.jsonl');
    const peer: PeerLog = { pings: [], reports: [] };
    const runner = Runner.open({ log, machines: [demoDefinition], effects: demoEffects(log, 1, peer), clock: simulatedClock() });
    runner.start('demo', 'demo', DEMO_INPUT);
    runner.send('demo', { type: 'demo.start' });
    runner.close();
    const seqs = readLog(log).records.map((r) => `${r.seq}:${r.type}`);
    expect(seqs).toEqual(['1:run.started', '2:actor.started', '3:demo.start', '4:demo.pong', '5:run.stopped']);
  });

  it('delivers a failed effect to the machine as effect.failed, logged with its cause', () => {
    const log = join(tempDir(), 'events.jsonl');
    const runner = Runner.open({
      log,
      machines: [demoDefinition],
      clock: simulatedClock(),
      effects: {
        sendPing: fromPromise(async () => {
          throw new Error('peer unreachable');
        }),
      },
    });
    runner.start('demo', 'demo', { ...DEMO_INPUT, maxAttempts: 1 });
    runner.send('demo', { type: 'demo.start' });
    return runner
      .waitFor('demo', (s) => s.status === 'done')
      .then(() => {
        runner.close();
        const failed = readLog(log).records.filter((r) => r.type === 'effect.failed');
        expect(failed.map((r) => [r.data, r.state])).toEqual([
          [{ effect: 'sendPing', causeSeq: 3, message: 'peer unreachable' }, 'gaveUp'],
          // The gaveUp state's report effect has no handler in this test: that is logged too.
          [{ effect: 'report', causeSeq: 4, message: 'no handler for effect "report"' }, 'gaveUp'],
        ]);
      });
  });

  it('refuses events the machine does not accept and data that does not fit the schema, logging nothing', () => {
    const log = join(tempDir(), 'events.jsonl');
    const runner = Runner.open({ log, machines: [demoDefinition], clock: simulatedClock() });
    runner.start('demo', 'demo', DEMO_INPUT);
    expect(() => runner.send('demo', { type: 'demo.bogus' })).toThrow('does not accept event "demo.bogus"');
    expect(() => runner.send('demo', { type: 'demo.pong', attempt: -1 })).toThrow(/demo\.pong: attempt: /);
    expect(() => runner.send('nobody', { type: 'demo.start' })).toThrow('no actor "nobody"');
    expect(() => runner.start('other', 'demo', { maxAttempts: 0 })).toThrow(/input of demo: maxAttempts/);
    expect(() => runner.start('runner', 'demo', DEMO_INPUT)).toThrow('"runner" cannot name an actor');
    expect(() => runner.start('demo', 'demo', DEMO_INPUT)).toThrow('actor "demo" exists');
    expect(() => runner.start('x', 'nope', DEMO_INPUT)).toThrow('no machine named "nope"');
    runner.close();
    expect(readLog(log).records.map((r) => r.type)).toEqual(['run.started', 'actor.started', 'run.stopped']);
  });

  it('replays what it wrote with every step verified', () => {
    const log = join(tempDir(), 'events.jsonl');
    const clock = simulatedClock();
    const runner = Runner.open({ log, machines: [demoDefinition], effects: demoEffects(log, 3, { pings: [], reports: [] }), clock });
    runner.start('demo', 'demo', DEMO_INPUT);
    runner.send('demo', { type: 'demo.start' });
    for (let i = 0; i < 4; i++) clock.increment(1_000);
    runner.close();
    const replay = replayLog(log, [demoDefinition], { verify: true });
    expect(replay.actors.map((a) => [a.id, a.snapshot.value, a.snapshot.context.attempt])).toEqual([['demo', 'answered', 3]]);
  });
});

describe('resuming from a log', () => {
  // A peer that never answers: pings go out, replies never come, timers decide.
  const silent = (log: string) => demoEffects(log, Number.POSITIVE_INFINITY, { pings: [], reports: [] });

  function armAndAbandon(log: string, clock = simulatedClock()) {
    // Opening a second runner on a closed log is how a new process resumes; the first one's
    // close() is what a crash skips, and pending timers survive either way.
    const runner = Runner.open({ log, machines: [demoDefinition], clock, effects: silent(log) });
    runner.start('demo', 'demo', DEMO_INPUT);
    runner.send('demo', { type: 'demo.start' });
    runner.close('simulated stop');
    return clock.now();
  }

  it('fires an overdue timer at once, exactly once across later resumes', () => {
    const log = join(tempDir(), 'events.jsonl');
    const armedAt = armAndAbandon(log);
    const later = simulatedClock();
    later.set(armedAt + 60_000);
    const resumed = Runner.open({ log, machines: [demoDefinition], clock: later, effects: silent(log) });
    expect(resumed.pendingTimers()).toHaveLength(1);
    later.increment(0);
    expect(resumed.state('demo')).toBe('waiting');
    resumed.close();

    const again = simulatedClock();
    again.set(armedAt + 120_000);
    const second = Runner.open({ log, machines: [demoDefinition], clock: again, effects: silent(log) });
    // The retry timer armed by the firing is now overdue and fires; the reply timer does not again.
    again.increment(0);
    second.close();
    const fired = readLog(log).records.filter((r) => r.type === 'timer.fired').map((r) => (r.data as { id: string }).id);
    expect(fired).toEqual(['xstate.after.replyTimeout.demo.pinging', 'xstate.after.retryDelay.demo.waiting']);
  });

  it('re-arms a timer that is not yet due for the time that is left', () => {
    const log = join(tempDir(), 'events.jsonl');
    const armedAt = armAndAbandon(log);
    const clock = simulatedClock();
    clock.set(armedAt + 400);
    const resumed = Runner.open({ log, machines: [demoDefinition], clock, effects: silent(log) });
    clock.increment(599);
    expect(resumed.state('demo')).toBe('pinging');
    clock.increment(1);
    expect(resumed.state('demo')).toBe('waiting');
    resumed.close();
  });

  it('never fires a cancelled timer', () => {
    const log = join(tempDir(), 'events.jsonl');
    const clock = simulatedClock();
    const runner = Runner.open({ log, machines: [demoDefinition], effects: demoEffects(log, 1, { pings: [], reports: [] }), clock });
    runner.start('demo', 'demo', DEMO_INPUT);
    runner.send('demo', { type: 'demo.start' });
    clock.increment(10_000);
    runner.close();
    const later = simulatedClock();
    later.set(clock.now() + 10_000);
    const resumed = Runner.open({ log, machines: [demoDefinition], clock: later });
    expect(resumed.pendingTimers()).toEqual([]);
    later.increment(10_000);
    resumed.close();
    expect(readLog(log).records.filter((r) => r.type === 'timer.fired')).toEqual([]);
  });

  it('continues seq across runs and names each run in its records', () => {
    const log = join(tempDir(), 'events.jsonl');
    armAndAbandon(log);
    const resumed = Runner.open({ log, machines: [demoDefinition], clock: simulatedClock(), runId: 'second', epoch: 2 });
    resumed.close();
    const records = readLog(log).records;
    expect(records.map((r) => r.seq)).toEqual(records.map((_, i) => i + 1));
    const tail = records.slice(-2);
    expect(tail.map((r) => [r.runId, r.epoch, r.type])).toEqual([
      ['second', 2, 'run.started'],
      ['second', 2, 'run.stopped'],
    ]);
    expect(tail[0]?.data).toMatchObject({ resumedFromSeq: records.length - 2 });
  });
});
