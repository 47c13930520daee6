import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NonDeterminismError } from '../../src/errors.js';
import { demoDefinition } from '../../src/machines/demo.machine.js';
import { replayLog } from '../../src/runner/replay.js';

const golden = (name: string) => join(import.meta.dirname, '../fixtures/logs', name);

/** The demo machine with one implementation swapped, as a code change would. */
function changed(implementations: Parameters<typeof demoDefinition.machine.provide>[0]) {
  return { ...demoDefinition, machine: demoDefinition.machine.provide(implementations) };
}

describe('replaying golden logs', () => {
  it.each([
    ['demo-answered.jsonl', 'answered', 2],
    ['demo-gave-up.jsonl', 'gaveUp', 3],
    ['demo-resumed.jsonl', 'answered', 2],
  ])('%s verifies every step and ends %s after %i attempts', (file, state, attempts) => {
    const result = replayLog(golden(file), [demoDefinition], { verify: true });
    expect(result.actors.map((a) => [a.snapshot.value, a.snapshot.context.attempt])).toEqual([[state, attempts]]);
    expect(result.pendingTimers).toEqual([]);
  });

  it('reports the state of every actor at a given seq', () => {
    const result = replayLog(golden('demo-gave-up.jsonl'), [demoDefinition], { verify: true, at: 5 });
    expect(result.lastSeq).toBe(5);
    expect(result.actors.map((a) => [a.snapshot.value, a.snapshot.context.attempt])).toEqual([['pinging', 2]]);
    expect(result.pendingTimers.map((t) => [t.id, t.armedSeq])).toEqual([['xstate.after.replyTimeout.demo.pinging', 5]]);
  });

  it('keeps the timers a crashed run left pending', () => {
    const result = replayLog(golden('demo-resumed.jsonl'), [demoDefinition], { verify: true, at: 3 });
    expect(result.pendingTimers).toMatchObject([
      { actor: 'demo', id: 'xstate.after.replyTimeout.demo.pinging', armedSeq: 3, dueAt: Date.parse('2026-11-23T09:00:01.000Z') },
    ]);
  });
});

describe('verification catches a changed machine', () => {
  function divergence(machine: typeof demoDefinition, file = 'demo-answered.jsonl'): NonDeterminismError {
    try {
      replayLog(golden(file), [machine], { verify: true });
    } catch (error) {
      if (error instanceof NonDeterminismError) return error;
      throw error;
    }
    throw new Error('replay did not diverge');
  }

  it('a changed delay diverges at the record that armed the timer, in its effects', () => {
    const error = divergence(changed({ delays: { replyTimeout: 999 } }));
    expect([error.seq, error.actor, error.field]).toEqual([3, 'demo', 'effects']);
    expect(JSON.stringify(error.expected)).toContain('"delayMs":1000');
    expect(JSON.stringify(error.actual)).toContain('"delayMs":999');
  });

  it('a changed guard diverges at the first step it decides, in the state', () => {
    const error = divergence(changed({ guards: { attemptsLeft: () => false } }));
    expect([error.seq, error.field, error.expected, error.actual]).toEqual([4, 'state', 'waiting', 'gaveUp']);
  });

  it('a changed action diverges at the first step that runs it', () => {
    // countAttempt no longer assigns: the ping goes out as attempt 0, and the action itself shows up as an effect.
    const error = divergence(changed({ actions: { countAttempt: () => {} } }));
    expect([error.seq, error.field]).toEqual([3, 'effects']);
  });

  it('without --verify the changed machine folds on without complaint', () => {
    const result = replayLog(golden('demo-answered.jsonl'), [changed({ delays: { replyTimeout: 999 } })]);
    expect(result.records).toBeGreaterThan(3);
  });
});
