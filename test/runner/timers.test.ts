import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Runner } from '../../src/runner/runner.js';
import { replayLog } from '../../src/runner/replay.js';
import { readLog } from '../../src/store/logReader.js';
import { simulatedClock } from '../helpers/demo.js';
import { useTempDirs } from '../helpers/tempDir.js';
import { snoozeDefinition } from '../fixtures/machines/snooze.machine.js';

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
