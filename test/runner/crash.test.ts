import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { demoDefinition } from '../../src/machines/demo.machine.js';
import { replayLog } from '../../src/runner/replay.js';
import { Runner } from '../../src/runner/runner.js';
import { readLog } from '../../src/store/logReader.js';
import { simulatedClock } from '../helpers/demo.js';
import { processGone } from '../helpers/processes.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const golden = join(import.meta.dirname, '../fixtures/logs/demo-answered.jsonl');

describe('a log cut by a crash', () => {
  it('replays whole after a resume, wherever inside the last record the cut fell', () => {
    // The golden run without its clean stop: the last record is the answer that ended it.
    const lines = readFileSync(golden, 'utf8').trimEnd().split('\n').slice(0, -1);
    const whole = Buffer.from(`${lines.join('\n')}\n`);
    const lastStart = whole.length - Buffer.byteLength(lines.at(-1)!) - 1;
    const dir = tempDir();
    // Every offset from the start of the record to the byte before its newline (all but the newline written).
    for (let cut = lastStart; cut < whole.length; cut++) {
      const log = join(dir, `cut-${cut}.jsonl`);
      writeFileSync(log, whole.subarray(0, cut));
      const before = readLog(log);
      expect(before.records).toHaveLength(lines.length - 1);
      expect(before.torn?.offset).toBe(cut === lastStart ? undefined : lastStart);

      const runner = Runner.open({ log, machines: [demoDefinition], clock: simulatedClock() });
      runner.close('resumed after the cut');
      const after = replayLog(log, [demoDefinition], { verify: true });
      expect(after.torn).toBeUndefined();
      const records = readLog(log).records;
      const repaired = records.filter((r) => r.type === 'log.tornTail').map((r) => r.data);
      expect(repaired).toEqual(cut === lastStart ? [] : [{ offset: lastStart, bytes: cut - lastStart, text: whole.subarray(lastStart, cut).toString() }]);
      // The answer was never committed, so the actor is still pinging, its reply timer pending.
      expect(after.actors.map((a) => a.snapshot.value)).toEqual(['pinging']);
      expect(after.pendingTimers.map((t) => t.id)).toEqual(['xstate.after.replyTimeout.demo.pinging']);
    }
  });

  it('survives a SIGKILL in the middle of an append loop: the log reads, replays, and resumes', async () => {
    const log = join(tempDir(), 'events.jsonl');
    const child = execa('node', [join(import.meta.dirname, '../fixtures/runner/busyRunner.mjs'), log, '2000'], { reject: false });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
      child.on('exit', (code) => reject(new Error(`busyRunner exited early with ${code}`)));
    });
    child.kill('SIGKILL');
    const killed = await child;
    expect(killed.signal).toBe('SIGKILL');
    expect(processGone(child.pid!)).toBe(true);

    const crashed = replayLog(log, [demoDefinition], { verify: true });
    expect(crashed.records).toBeGreaterThanOrEqual(2000);
    expect(readLog(log).records.some((r) => r.type === 'run.stopped')).toBe(false);

    const copy = `${log}.copy`;
    copyFileSync(log, copy);
    const clock = simulatedClock();
    clock.set(Date.parse('2026-11-24T00:00:00.000Z'));
    const runner = Runner.open({ log: copy, machines: [demoDefinition], clock });
    // Every timer the dead run left pending is overdue now and fires exactly once.
    const pending = runner.pendingTimers().length;
    expect(pending).toBeGreaterThan(0);
    clock.increment(0);
    runner.close('resumed');
    const resumed = replayLog(copy, [demoDefinition], { verify: true });
    const fired = readLog(copy).records.filter((r) => r.type === 'timer.fired' && r.seq > crashed.lastSeq);
    expect(new Set(fired.map((r) => `${r.actor}/${(r.data as { armedSeq: number }).armedSeq}`)).size).toBe(fired.length);
    expect(fired.length).toBeGreaterThanOrEqual(pending);
    expect(resumed.torn).toBeUndefined();
  });
});
