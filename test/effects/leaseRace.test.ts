import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { describe, expect, it } from 'vitest';
import { currentIdentity } from '../../src/effects/processIdentity.js';
import { processGone } from '../helpers/processes.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const RACER = join(import.meta.dirname, '../fixtures/lease/racer.mjs');
const ROUNDS = 40;
const RACERS = 6;

/** A racer process with a queue of its stdout lines, so each answer can be awaited in turn. */
function racer(dir: string, id: number) {
  const child: ResultPromise = execa('node', [RACER, dir, `racer-${id}`], { reject: false, stdin: 'pipe' });
  const lines: string[] = [];
  const waiters: Array<(line: string) => void> = [];
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    partial += chunk.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      const waiter = waiters.shift();
      if (waiter) waiter(line);
      else lines.push(line);
    }
  });
  const next = () => (lines.length > 0 ? Promise.resolve(lines.shift()!) : new Promise<string>((resolve) => waiters.push(resolve)));
  const ask = (command: string) => {
    child.stdin!.write(`${command}\n`);
    return next();
  };
  return { child, ask };
}

describe(`${RACERS} processes racing for the lease, ${ROUNDS} rounds`, () => {
  it.each([
    ['on an empty directory', () => {}],
    ['on a stale lock (dead owner)', (dir: string) => {
      const at = new Date().toISOString();
      const { bootId, hostname } = currentIdentity();
      writeFileSync(join(dir, 'scheduler.lock'), JSON.stringify({ ownerId: 'dead', lockId: `dead-${at}`, pid: 999_999, pidStartTime: '1', bootId, hostname, acquiredAt: at, renewedAt: at, epoch: 1 }));
    }],
  ])('%s: exactly one holder every round, epochs rising', async (_what, prepare) => {
    const dir = join(tempDir(), '.warden');
    mkdirSync(dir, { recursive: true });
    const racers = Array.from({ length: RACERS }, (_, i) => racer(dir, i));
    const epochs: number[] = [];
    try {
      for (let round = 0; round < ROUNDS; round++) {
        prepare(dir);
        const answers = await Promise.all(racers.map((r) => r.ask('go')));
        const acquired = answers.filter((a) => a.startsWith('acquired'));
        expect({ round, acquired: acquired.length }).toEqual({ round, acquired: 1 });
        epochs.push(Number(acquired[0]!.split(' ')[1]));
        await Promise.all(racers.map((r) => r.ask('release')));
      }
    } finally {
      for (const r of racers) r.child.stdin!.end();
      await Promise.all(racers.map((r) => r.child));
    }
    expect(epochs.every((e, i) => i === 0 || e > epochs[i - 1]!)).toBe(true);
    for (const r of racers) expect(processGone(r.child.pid!)).toBe(true);
  }, 60_000);
});
