/**
 * The record chain and the commit mark, at the store level: legacy logs, segments, the mark's
 * own damage, and what each fsync mode leaves behind.
 */
import { closeSync, openSync, readFileSync, readSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LogFormatError } from '../../src/errors.js';
import { formatMark, markPathOf, readMark } from '../../src/store/commitMark.js';
import { LogCursor, readLog } from '../../src/store/logReader.js';
import { LogWriter, type FsyncMode } from '../../src/store/logWriter.js';
import { chained, newRecord, rawLine } from '../fixtures/store/records.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();

function formatError(read: () => unknown): LogFormatError {
  try {
    read();
  } catch (error) {
    if (error instanceof LogFormatError) return error;
    throw error;
  }
  throw new Error('expected a LogFormatError');
}

function write(path: string, count: number, options: { fsync?: FsyncMode } = {}): void {
  const writer = LogWriter.open(path, options);
  for (let n = 1; n <= count; n++) writer.append(newRecord(n));
  writer.close();
}

describe('the record chain', () => {
  it('accepts a log written before sums as a legacy prefix, and a writer chains on from it', () => {
    const path = join(tempDir(), 'events.jsonl');
    writeFileSync(path, `${rawLine(1)}\n${rawLine(2)}\n`);
    const writer = LogWriter.open(path);
    writer.append(newRecord(3));
    writer.close();
    const { records } = readLog(path);
    expect(records.map((r) => r.sum === undefined)).toEqual([true, true, false]);
    // The first chained record starts from 0, as for a new log.
    expect(readFileSync(path, 'utf8').trimEnd().split('\n')[2]).toBe(chained([rawLine(3)])[0]);
  });

  it('refuses a record without a sum after a chained one', () => {
    const path = join(tempDir(), 'events.jsonl');
    writeFileSync(path, `${chained([rawLine(1)]).join('\n')}\n${rawLine(2)}\n`);
    const error = formatError(() => readLog(path));
    expect(error.line).toBe(2);
    expect(error.reason).toBe('seq 2 has no sum, after the chained record seq 1: it was changed or put there by hand');
  });

  it('refuses a sum that is not the last field', () => {
    const path = join(tempDir(), 'events.jsonl');
    const [line] = chained([rawLine(1)]);
    const sum = /"sum":"([0-9a-f]{8})"/.exec(line!)![1]!;
    writeFileSync(path, `{"sum":"${sum}",${rawLine(1).slice(1)}\n`);
    expect(formatError(() => readLog(path)).reason).toBe("seq 1: sum must be the record's last field");
  });

  it('a segment starts from the previous segment’s last sum (chainFrom), and from nothing else', () => {
    const dir = tempDir();
    const whole = chained([1, 2, 3, 4].map((n) => rawLine(n)));
    const first = join(dir, 'a.jsonl');
    const second = join(dir, 'b.jsonl');
    writeFileSync(first, `${whole.slice(0, 2).join('\n')}\n`);
    writeFileSync(second, `${whole.slice(2).join('\n')}\n`);
    const fd1 = openSync(first, 'r');
    const c1 = new LogCursor(fd1, first);
    while (c1.next()) {
      /* read the first segment through */
    }
    closeSync(fd1);
    const fd2 = openSync(second, 'r');
    try {
      const c2 = new LogCursor(fd2, second, { chainFrom: c1.chainSum });
      expect([c2.next()?.seq, c2.next()?.seq, c2.next()]).toEqual([3, 4, undefined]);
      const alone = new LogCursor(fd2, second);
      expect(() => alone.next()).toThrow(/seq 3 fails its checksum/);
    } finally {
      closeSync(fd2);
    }
  });
});

describe('the commit mark', () => {
  it.each<[FsyncMode, boolean]>([
    ['always', true],
    ['batch', true],
    ['never', false],
  ])('with fsync %s the writer leaves a mark at the log’s end: %s', (fsync, marked) => {
    const path = join(tempDir(), 'events.jsonl');
    write(path, 3, { fsync });
    const mark = readMark(path);
    if (!marked) return expect(mark).toBeUndefined();
    const { records } = readLog(path);
    expect(mark).toEqual({ seq: 3, offset: readFileSync(path).length, sum: records[2]!.sum });
  });

  it('is a fixed-size file rewritten in place', () => {
    const path = join(tempDir(), 'events.jsonl');
    write(path, 1);
    write(path, 1);
    expect(readFileSync(markPathOf(path)).length).toBe(formatMark({ seq: 1, offset: 1, sum: '' }).length);
    expect(readMark(path)?.seq).toBe(2);
  });

  it('the writer refuses a log cut below its mark before repairing anything', () => {
    const path = join(tempDir(), 'events.jsonl');
    write(path, 3, { fsync: 'always' });
    const size = readFileSync(path).length;
    truncateSync(path, size - 5);
    const error = formatError(() => LogWriter.open(path));
    expect(error.message).toMatch(/ends at byte \d+, but seq 3 was committed up to byte \d+ \(per events\.jsonl\.mark\): 5 bytes of committed records are missing/);
    // Nothing was cut: the evidence stays.
    expect(readFileSync(path).length).toBe(size - 5);
  });

  it('a log replaced by another of the same length is caught by the sum the mark names', () => {
    const path = join(tempDir(), 'events.jsonl');
    write(path, 2);
    const bytes = readFileSync(path, 'utf8').replace('"n":2', '"n":3');
    rmSync(path);
    writeFileSync(path, chained(bytes.trimEnd().split('\n').map((l) => l.replace(/,"sum":"[0-9a-f]{8}"\}$/, '}'))).join('\n') + '\n');
    expect(formatError(() => readLog(path)).reason).toMatch(/seq 2 was committed up to byte \d+ .*committed records were changed/);
  });

  it('a log deleted under its mark is refused by the writer, not started afresh', () => {
    const path = join(tempDir(), 'events.jsonl');
    write(path, 2);
    rmSync(path);
    expect(formatError(() => LogWriter.open(path)).reason).toMatch(/ends at byte 0, but seq 2 was committed/);
  });

  it('a mark that is not one Warden wrote is named, not trusted', () => {
    const path = join(tempDir(), 'events.jsonl');
    write(path, 2);
    const fd = openSync(markPathOf(path), 'r+');
    const buffer = Buffer.alloc(96);
    readSync(fd, buffer, 0, 96, 0);
    buffer.write('9', buffer.indexOf('seq=') + 4);
    writeFileSync(markPathOf(path), buffer);
    closeSync(fd);
    expect(formatError(() => readLog(path)).message).toMatch(/events\.jsonl\.mark:1: not a commit mark Warden wrote/);
  });
});
