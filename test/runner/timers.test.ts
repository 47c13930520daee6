import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Runner } from '../../src/runner/runner.js';
import { replayLog } from '../../src/runner/replay.js';
import { readLog } from '../../src/store/logReader.js';
import { fromCallback } from 'xstate';
import { demoDefinition } from '../../src/machines/demo.machine.js';
import { DEMO_INPUT, simulatedClock } from '../helpers/demo.js';
import { useTempDirs } from '../helpers/tempDir.js';
import { snoozeDefinition } from '../fixtures/machines/snooze.machine.js';
import { runBounded } from '../../src/effects/boundedCommand.js';
import { systemClock } from '../../src/effects/clock.js';
import { MAX_TIMER_MS, setLongTimeout } from '../../src/effects/longTimer.js';
import { pollOnce, type MeterReport } from '../../src/effects/meter.js';
import { warden } from '../helpers/cli.js';

const tempDir = useTempDirs();

function open() {
  const log = join(tempDir(), 'events.jsonl');
  const clock = simulatedClock();
  const runner = Runner.open({ log, machines: [snoozeDefinition], clock });
  runner.start('snooze', 'snooze', undefined);
  return { log, clock, runner };
}

describe('timers in one step', () => {
  it('a re-entered state cancels its timer and arms it afresh', () => {
    const { log, clock, runner } = open();
    clock.increment(4_000);
    runner.send('snooze', { type: 'snooze.poke' });
    clock.increment(4_999);
    expect(runner.state('snooze')).toBe('armed');
    clock.increment(1);
    expect(runner.state('snooze')).toBe('ringing');
    runner.close();
    const poke = readLog(log).records.find((r) => r.type === 'snooze.poke');
    expect(poke?.effects?.map((e) => e.type)).toEqual(['timer.cancel', 'timer.arm']);
    expect(replayLog(log, [snoozeDefinition], { verify: true }).actors[0]?.snapshot.value).toBe('ringing');
  });

  it('a timer armed and cancelled in the same step never fires', () => {
    const { log, clock, runner } = open();
    runner.send('snooze', { type: 'snooze.blink' });
    expect(runner.state('snooze')).toBe('armed');
    clock.increment(1_000);
    expect(runner.state('snooze')).toBe('armed');
    expect(runner.pendingTimers().map((t) => t.id)).toEqual(['xstate.after.alarm.snooze.armed']);
    runner.close();
    const fired = readLog(log).records.filter((r) => r.type === 'timer.fired');
    expect(fired).toEqual([]);
  });
});

/** Primitive timers the test fires by hand: each step armed, with its delay. */
function fakeTimers() {
  const armed: Array<{ fn: () => void; ms: number; cleared: boolean }> = [];
  return {
    armed,
    timers: {
      setTimeout: (fn: () => void, ms: number) => {
        const entry = { fn, ms, cleared: false };
        armed.push(entry);
        return entry;
      },
      clearTimeout: (handle: unknown) => {
        (handle as { cleared: boolean }).cleared = true;
      },
    },
    /** Fires the last step armed (each step arms the next from inside its callback). */
    fireLast() {
      const entry = armed.at(-1)!;
      expect(entry.cleared).toBe(false);
      entry.fn();
    },
  };
}

describe('timers of 2^31 ms and more (Node clamps one timer to 1 ms past 2^31 − 1)', () => {
  it('are armed in steps of at most 2^31 − 1 ms and fire once the whole delay has passed', () => {
    for (const [ms, steps] of [
      [2 ** 31, [MAX_TIMER_MS, 1]],
      [600 * 3_600_000, [MAX_TIMER_MS, 600 * 3_600_000 - MAX_TIMER_MS]],
      [3 * MAX_TIMER_MS + 5, [MAX_TIMER_MS, MAX_TIMER_MS, MAX_TIMER_MS, 5]],
      [MAX_TIMER_MS, [MAX_TIMER_MS]],
      [1_000, [1_000]],
    ] as const) {
      const fake = fakeTimers();
      let fired = 0;
      setLongTimeout(() => fired++, ms, fake.timers);
      for (let i = 0; i < steps.length; i++) {
        expect(fired, `${ms} ms fired after ${i} of ${steps.length} steps`).toBe(0);
        fake.fireLast();
      }
      expect(fake.armed.map((a) => a.ms)).toEqual(steps);
      expect(fired).toBe(1);
    }
  });

  it('clear() stops a long timer between its steps', () => {
    const fake = fakeTimers();
    let fired = 0;
    const timer = setLongTimeout(() => fired++, 2 ** 32, fake.timers);
    fake.fireLast();
    timer.clear();
    expect(fake.armed.at(-1)!.cleared).toBe(true);
    expect(fake.armed).toHaveLength(2);
    expect(fired).toBe(0);
  });

  it("the runner arms a machine's 2^31 ms delay in steps on its clock, and it fires only once all of it has passed", () => {
    const clock = simulatedClock();
    const asked: number[] = [];
    // The runner's clock, recording each delay it is asked for.
    const recording = { now: () => clock.now(), setTimeout: (fn: () => void, ms: number) => (asked.push(ms), clock.setTimeout(fn, ms)), clearTimeout: (h: unknown) => clock.clearTimeout(h as never) };
    const runner = Runner.open({ log: join(tempDir(), 'events.jsonl'), machines: [demoDefinition], clock: recording, effects: { sendPing: fromCallback(() => {}) } });
    runner.start('demo', 'demo', { ...DEMO_INPUT, replyTimeoutMs: 2 ** 31 + 10 });
    runner.send('demo', { type: 'demo.start' });
    expect(asked).toEqual([MAX_TIMER_MS]);
    clock.increment(MAX_TIMER_MS);
    expect(runner.state('demo')).toBe('pinging');
    expect(asked).toEqual([MAX_TIMER_MS, 11]);
    clock.increment(10);
    expect(runner.state('demo')).toBe('pinging');
    clock.increment(1);
    expect(runner.state('demo')).toBe('waiting');
    runner.close();
  });

  it('the system clock does not fire a 2^31 ms timer before a 50 ms one', async () => {
    let fired = false;
    const long = systemClock.setTimeout(() => (fired = true), 2 ** 31);
    await new Promise<void>((resolve) => systemClock.setTimeout(resolve, 50));
    systemClock.clearTimeout(long);
    expect(fired).toBe(false);
  });

  it('warden exec --max-duration 600h lets a 1.5 s job complete (it was killed at once)', async () => {
    const dir = tempDir();
    const result = await warden(['exec', '--dir', dir, '--max-duration', '600h', '--', 'node', '-e', 'setTimeout(() => {}, 1500)']);
    expect(result.stderr).not.toMatch(/TimeoutOverflowWarning/);
    expect(result.code, result.stderr).toBe(0);
  });

  it('a command meter with timeoutMs 2^31 is not abandoned at once; a helper command with timeoutMs 2^31 runs to its end', async () => {
    const answer = await new Promise<MeterReport>((resolve) => {
      pollOnce({ command: ['node', '-e', 'setTimeout(() => console.log(JSON.stringify({ utilization: 7 })), 300)'] }, 2 ** 31, Date.now, resolve);
    });
    expect(answer).toMatchObject({ type: 'poll.answered', utilization: 7 });
    const bounded = await runBounded(['node', '-e', 'setTimeout(() => console.log("done"), 300)'], { kind: 'test', input: '', timeoutMs: 2 ** 31 });
    expect(bounded).toEqual({ ok: true, stdout: 'done' });
  });
});
