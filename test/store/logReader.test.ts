import { closeSync, copyFileSync, openSync, readFileSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LogFormatError, UsageError } from '../../src/errors.js';
import { createRecordChecker } from '../../src/store/catalogue.js';
import { LogReader, readLog, type ReadOptions } from '../../src/store/logReader.js';
import { LogWriter } from '../../src/store/logWriter.js';
import { MAX_RECORD_BYTES } from '../../src/store/record.js';
import { newRecord, rawLine } from '../fixtures/store/records.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();

function catchFormatError(path: string, options?: ReadOptions): LogFormatError {
  try {
    readLog(path, options);
  } catch (error) {
    if (error instanceof LogFormatError) return error;
    throw error;
  }
  throw new Error('expected a LogFormatError');
}

const started = { pid: 1, hostname: 'h', resumedFromSeq: 0 };
const runnerCheck = (): ReadOptions => ({ check: createRecordChecker(new Map()) });

describe('LogReader', () => {
  it('reads an empty file as an empty log', () => {
    const path = join(tempDir(), 'events.jsonl');
    writeFileSync(path, '');
    expect(readLog(path)).toEqual({ records: [], torn: undefined });
  });

  it('throws a UsageError naming a missing log', () => {
    const path = join(tempDir(), 'missing.jsonl');
    expect(() => readLog(path)).toThrow(UsageError);
    expect(() => readLog(path)).toThrow(`no event log at ${path}`);
  });

  it('streams records in order and counts what it read', () => {
    const path = join(tempDir(), 'events.jsonl');
    // Enough records to span several 64 KiB chunks, with multibyte text across the chunk edges.
    const text = (i: number) => 'é€😀'.repeat(i % 50);
    const lines = Array.from({ length: 2000 }, (_, i) => rawLine(i + 1, { data: { text: text(i) } }));
    writeFileSync(path, `${lines.join('\n')}\n`);
    const reader = new LogReader(path);
    const seen = [...reader];
    expect(seen.map((r) => JSON.stringify(r))).toEqual(lines);
    expect(reader.lastSeq).toBe(2000);
    expect(reader.bytesRead).toBe(readFileSync(path).length);
    expect(reader.torn).toBeUndefined();
  });

  it('reports the bytes after the last newline as torn without parsing them', () => {
    const path = join(tempDir(), 'events.jsonl');
    const tail = 'not json at all é';
    writeFileSync(path, `${rawLine(1)}\n${tail}`);
    expect(readLog(path)).toEqual({
      records: [expect.objectContaining({ seq: 1 })],
      torn: { offset: Buffer.byteLength(rawLine(1)) + 1, bytes: Buffer.byteLength(tail), text: tail },
    });
  });

  it('reads a file with no newline at all as a torn tail at offset 0', () => {
    const path = join(tempDir(), 'events.jsonl');
    writeFileSync(path, rawLine(1));
    expect(readLog(path)).toEqual({ records: [], torn: { offset: 0, bytes: rawLine(1).length, text: rawLine(1) } });
  });

  it('cuts the last record at every byte and still reads, repairs and appends', () => {
    const dir = tempDir();
    const original = join(dir, 'original.jsonl');
    const writer = LogWriter.open(original);
    for (let n = 1; n <= 4; n++) writer.append(newRecord(n));
    writer.append(newRecord(5, { data: { text: 'ünïcödé 😀 € spans several bytes' } }));
    writer.close();
    const bytes = readFileSync(original);
    const lineStart = bytes.lastIndexOf(0x0a, bytes.length - 2) + 1;
    const lineBytes = bytes.length - 1 - lineStart;

    for (let kept = 0; kept <= lineBytes; kept++) {
      const copy = join(dir, `cut-${kept}.jsonl`);
      copyFileSync(original, copy);
      truncateSync(copy, lineStart + kept);
      const tail = bytes.subarray(lineStart, lineStart + kept);
      const expectedTorn = kept === 0 ? undefined : { offset: lineStart, bytes: kept, text: tail.toString('utf8') };

      const read = readLog(copy);
      expect(read.records.map((r) => r.seq)).toEqual([1, 2, 3, 4]);
      expect(read.torn).toEqual(expectedTorn);

      const reopened = LogWriter.open(copy);
      expect(reopened.repairedTail).toEqual(expectedTorn);
      expect(reopened.append(newRecord(6)).seq).toBe(5);
      reopened.close();
      const repaired = readLog(copy);
      expect(repaired.torn).toBeUndefined();
      expect(repaired.records.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    }
  });

  const malformed: Array<[string, string[], ReadOptions, number, string | RegExp]> = [
    ['a line that is not JSON', [rawLine(1), '{"seq":2,'], {}, 2, /^not JSON: /],
    ['a missing field', [rawLine(1), rawLine(2), rawLine(3, { ts: undefined })], {}, 3, /^bad record: ts: /],
    ['a field of the wrong type', [rawLine(1, { seq: '1' })], {}, 1, /^bad record: seq: .*number/],
    ['an extra key', [rawLine(1), rawLine(2, { colour: 'red' })], {}, 2, /^bad record: .*"colour"/],
    ['half the transition fields', [rawLine(1, { state: 'idle' })], {}, 1, /needs all of state, hash and effects/],
    ['seq going backwards', [rawLine(1), rawLine(11), rawLine(5)], {}, 3, 'seq 5 is not greater than 11'],
    ['a repeated seq', [rawLine(1), rawLine(2), rawLine(2)], {}, 3, 'seq 2 is not greater than 2'],
    ['an empty line in the middle', [rawLine(1), '', rawLine(2)], {}, 2, 'empty line'],
    [
      'a type the check does not know',
      [rawLine(1, { type: 'run.started', data: started }), rawLine(2, { type: 'run.exploded', data: {} })],
      runnerCheck(),
      2,
      'unknown event type "run.exploded" for the runner',
    ],
  ];

  it.each(malformed)('throws a one-line LogFormatError for %s', (_name, lines, options, line, reason) => {
    const path = join(tempDir(), 'events.jsonl');
    writeFileSync(path, `${lines.join('\n')}\n`);
    const error = catchFormatError(path, { ...options, displayName: 'events.jsonl' });
    expect(error.file).toBe('events.jsonl');
    expect(error.line).toBe(line);
    if (typeof reason === 'string') expect(error.reason).toBe(reason);
    else expect(error.reason).toMatch(reason);
    expect(error.message).toBe(`events.jsonl:${line}: ${error.reason}`);
    expect(error.message).not.toMatch(/[\r\n]/);
  });

  it('flattens and shortens a long multi-line reason from check', () => {
    const path = join(tempDir(), 'events.jsonl');
    writeFileSync(path, `${rawLine(1)}\n`);
    const error = catchFormatError(path, { check: () => `first\nsecond\r\n${'x'.repeat(1000)}` });
    expect(error.message).not.toMatch(/[\r\n]/);
    expect(error.reason.length).toBeLessThanOrEqual(200);
    expect(error.reason.startsWith('first second x')).toBe(true);
  });

  it('fails fast on a 20 MB line without reading it all', () => {
    const path = join(tempDir(), 'events.jsonl');
    const fd = openSync(path, 'w');
    writeSync(fd, `${rawLine(1)}\n{"seq":2,"data":"`);
    const piece = Buffer.alloc(1024 * 1024, 'x');
    for (let i = 0; i < 20; i++) writeSync(fd, piece);
    writeSync(fd, '"}\n');
    closeSync(fd);
    const reader = new LogReader(path);
    const seen: number[] = [];
    expect(() => {
      for (const record of reader) seen.push(record.seq);
    }).toThrow(new LogFormatError(path, 2, `line is longer than ${MAX_RECORD_BYTES} bytes`));
    expect(seen).toEqual([1]);
    expect(reader.bytesRead).toBeLessThan(MAX_RECORD_BYTES + 256 * 1024);
  });

  it('honours a smaller maxRecordBytes for complete lines too', () => {
    const path = join(tempDir(), 'events.jsonl');
    writeFileSync(path, `${rawLine(1)}\n${rawLine(2, { data: 'x'.repeat(100) })}\n`);
    const error = catchFormatError(path, { maxRecordBytes: 150 });
    expect([error.line, error.reason]).toEqual([2, 'line is longer than 150 bytes']);
  });
});
