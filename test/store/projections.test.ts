import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LogReader } from '../../src/store/logReader.js';
import { actorsProjection, fold, runsProjection } from '../../src/store/projections.js';

const golden = (name: string) => join(import.meta.dirname, '../fixtures/logs', name);

describe('projections folded from the log', () => {
  it('know each actor\'s latest state without running any machine', () => {
    const actors = fold(new LogReader(golden('demo-gave-up.jsonl')), actorsProjection);
    expect([...actors.values()]).toEqual([
      { actor: 'demo', machine: 'demo', state: 'gaveUp', lastSeq: 8, lastType: 'timer.fired', events: 7 },
    ]);
  });

  it('tell a run that crashed from one that stopped', () => {
    const runs = fold(new LogReader(golden('demo-resumed.jsonl')), runsProjection);
    expect(runs.map((r) => [r.runId, r.epoch, r.firstSeq, r.lastSeq, r.records, r.stopped?.reason ?? 'crashed'])).toEqual([
      ['golden-crashed', 1, 1, 3, 3, 'crashed'],
      ['golden-resumed', 2, 4, 9, 6, 'done'],
    ]);
  });
});
