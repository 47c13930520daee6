import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { LogWriter } from '../../src/store/logWriter.js';
import { parseRecord } from '../../src/store/logReader.js';
import { appendProblem, type LogRecord } from '../../src/store/record.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();

// Fields drawn from valid and invalid values alike, so both sides of the check are exercised.
const stateValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, fc.string(), fc.dictionary(fc.string(), tie('value'), { maxKeys: 3 })),
})).value;
// Mostly valid values (weight 4), sometimes not: both sides of the check get exercised.
const mostly = <T, U>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<U>) =>
  fc.oneof({ arbitrary: valid, weight: 4 }, { arbitrary: invalid, weight: 1 });
const envelope = fc.record({
  seq: mostly(fc.integer({ min: 1, max: 1_000_000 }), fc.oneof(fc.integer({ min: -2, max: 0 }), fc.double())),
  ts: mostly(
    fc.date({ min: new Date(0), max: new Date(Date.UTC(9999, 0)), noInvalidDate: true }).map((d) => d.toISOString()),
    fc.oneof(
      fc.string(),
      fc.constantFrom('2026-02-30T00:00:00.000Z', '2026-01-01T24:00:00.000Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00.000+01:00'),
    ),
  ),
  runId: mostly(fc.uuid(), fc.oneof(fc.constant(''), fc.integer())),
  epoch: mostly(fc.nat(), fc.oneof(fc.integer({ min: -5, max: -1 }), fc.double())),
  actor: mostly(fc.string({ minLength: 1 }), fc.oneof(fc.constant(''), fc.integer())),
  type: mostly(fc.string({ minLength: 1 }), fc.constant('')),
  data: fc.jsonValue(),
});
const transition = fc.record(
  {
    state: mostly(stateValue, fc.anything()),
    hash: mostly(fc.stringMatching(/^[0-9a-f]{16}$/), fc.string()),
    effects: mostly(
      fc.array(fc.record({ type: fc.string({ minLength: 1 }), params: fc.jsonValue() }, { requiredKeys: ['type'] }), { maxLength: 3 }),
      fc.anything(),
    ),
  },
  { requiredKeys: [] },
);
const record = fc.tuple(envelope, fc.option(transition, { freq: 3 })).map(([e, t]) => ({ ...e, ...(t ?? {}) }));

describe('the write path check', () => {
  it('lets through only records the reader accepts', () => {
    fc.assert(
      fc.property(record, (candidate) => {
        if (appendProblem(candidate as LogRecord) !== undefined) return;
        const line = JSON.stringify(candidate);
        expect(parseRecord(line)).toMatchObject({ seq: candidate.seq });
      }),
      { numRuns: 3_000 },
    );
  });

  it('accepts well-formed records (so the property above is not vacuous)', () => {
    let accepted = 0;
    fc.assert(
      fc.property(record, (candidate) => {
        if (appendProblem(candidate as LogRecord) === undefined) accepted++;
      }),
      { numRuns: 3_000 },
    );
    expect(accepted).toBeGreaterThan(300);
  });

  it.each([
    ['a ts that is not canonical', { ts: '2026-11-23T09:00:00Z' }, 'ts: expected an ISO time'],
    ['a day February does not have', { ts: '2026-02-30T00:00:00.000Z' }, 'ts: expected an ISO time'],
    ['an empty actor', { actor: '' }, 'actor: expected a non-empty string'],
    ['a negative epoch', { epoch: -1 }, 'epoch: expected a non-negative integer'],
    ['a state without hash and effects', { state: 'idle' }, 'a transition record needs all of state, hash and effects'],
    ['a short hash', { state: 'idle', hash: 'abc', effects: [] }, 'hash: expected 16 hex digits'],
    ['an effect with no type', { state: 'idle', hash: '0123456789abcdef', effects: [{}] }, 'effects: expected objects'],
    ['data with no JSON form', { data: undefined }, 'data must be a JSON value'],
  ])('refuses %s, naming the field, and writes nothing', (_what, change, message) => {
    const path = join(tempDir(), 'events.jsonl');
    const writer = LogWriter.open(path, { fsync: 'never' });
    const base = { ts: '2026-11-23T09:00:00.000Z', runId: 'r', epoch: 1, actor: 'a', type: 't', data: {} };
    try {
      expect(() => writer.append({ ...base, ...change } as never)).toThrow(UsageError);
      expect(() => writer.append({ ...base, ...change } as never)).toThrow(message);
      expect(writer.lastSeq).toBe(0);
    } finally {
      writer.close();
    }
  });
});
