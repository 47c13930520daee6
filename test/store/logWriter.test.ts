import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LogBusyError, LogFormatError, RecordTooLargeError, UsageError } from '../../src/errors.js';
import { readLog } from '../../src/store/logReader.js';
import { LogWriter, type FsyncMode, type LogWriterOptions } from '../../src/store/logWriter.js';
import { MAX_RECORD_BYTES } from '../../src/store/record.js';
import { chained, newRecord, rawLine } from '../fixtures/store/records.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();

function withWriter<T>(path: string, options: LogWriterOptions, use: (writer: LogWriter) => T): T {
  const writer = LogWriter.open(path, options);
  try {
    return use(writer);
  } finally {
    writer.close();
  }
}

describe('LogWriter', () => {
  it('creates the log and its missing directories, with mode 0600', () => {
    const path = join(tempDir(), 'a', 'b', 'events.jsonl');
    withWriter(path, {}, (writer) => {
      expect(writer.lastSeq).toBe(0);
      expect(writer.repairedTail).toBeUndefined();
    });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readLog(path).records).toEqual([]);
  });

  it('continues seq from the last record after a reopen', () => {
    const path = join(tempDir(), 'events.jsonl');
    withWriter(path, {}, (writer) => {
      for (let n = 1; n <= 3; n++) writer.append(newRecord(n));
    });
    const appended = withWriter(path, {}, (writer) => {
      expect(writer.lastSeq).toBe(3);
      return writer.append(newRecord(4));
    });
    expect(appended.seq).toBe(4);
    expect(readLog(path).records.map((r) => r.seq)).toEqual([1, 2, 3, 4]);
  });

  it('returns each record as the reader reads it back, up to its JSON form', () => {
    const path = join(tempDir(), 'events.jsonl');
    const transition = { state: { running: 'idle' }, hash: '0123456789abcdef', effects: [{ type: 'spawn' }] };
    const returned = withWriter(path, {}, (writer) => [
      writer.append(newRecord(1, { data: { when: new Date(Date.UTC(2026, 0, 1)), skipped: undefined } })),
      writer.append(newRecord(2, { actor: 'job:1', ...transition })),
    ]);
    expect(readLog(path).records).toEqual(JSON.parse(JSON.stringify(returned)));
    expect(readLog(path).records[0]?.data).toEqual({ when: '2026-01-01T00:00:00.000Z' });
    expect(returned.map((r) => r.seq)).toEqual([1, 2]);
  });

  it('writes the keys in the fixed order whatever order they were given in', () => {
    const path = join(tempDir(), 'events.jsonl');
    withWriter(path, {}, (writer) => {
      writer.append({
        effects: [],
        hash: 'ffffffffffffffff',
        state: 'idle',
        data: null,
        type: 't',
        actor: 'job:1',
        epoch: 2,
        runId: 'r',
        ts: '2026-11-22T10:00:00.000Z',
      });
    });
    const [line] = readFileSync(path, 'utf8').split('\n');
    const expected = ['seq', 'ts', 'runId', 'epoch', 'actor', 'type', 'data', 'state', 'hash', 'effects', 'sum'];
    expect(Object.keys(JSON.parse(line ?? '') as object)).toEqual(expected);
  });

  it('refuses a second writer for the same file in the process until the first closes', () => {
    const dir = tempDir();
    const path = join(dir, 'events.jsonl');
    symlinkSync(dir, join(dir, 'alias'));
    const first = LogWriter.open(path);
    expect(() => LogWriter.open(path)).toThrow(LogBusyError);
    expect(() => LogWriter.open(join(dir, 'alias', 'events.jsonl'))).toThrow(LogBusyError);
    first.close();
    first.close();
    withWriter(path, {}, (second) => expect(second.append(newRecord(1)).seq).toBe(1));
  });

  it('throws RecordTooLargeError for an oversized record and leaves the file unchanged', () => {
    const path = join(tempDir(), 'events.jsonl');
    withWriter(path, {}, (writer) => {
      writer.append(newRecord(1));
      const before = readFileSync(path);
      expect(() => writer.append(newRecord(2, { data: 'x'.repeat(MAX_RECORD_BYTES) }))).toThrow(RecordTooLargeError);
      expect(readFileSync(path).equals(before)).toBe(true);
      expect(writer.append(newRecord(2)).seq).toBe(2);
    });
    expect(readLog(path).records.map((r) => r.seq)).toEqual([1, 2]);
  });

  it.each([
    ['a transition record without its hash', newRecord(1, { state: 'idle', effects: [] })],
    ['a record whose data is undefined', newRecord(1, { data: undefined })],
    ['a record with a bad timestamp', newRecord(1, { ts: 'yesterday' })],
  ])('refuses %s and writes nothing', (_name, record) => {
    const path = join(tempDir(), 'events.jsonl');
    withWriter(path, {}, (writer) => {
      expect(() => writer.append(record)).toThrow(UsageError);
      expect(writer.lastSeq).toBe(0);
    });
    expect(statSync(path).size).toBe(0);
  });

  it.each<FsyncMode>(['always', 'batch', 'never'])('writes the same readable file with fsync %s', (fsync) => {
    const path = join(tempDir(), 'events.jsonl');
    const records = [newRecord(1), newRecord(2, { type: 'other' }), newRecord(3, { data: { text: 'é€😀' } })];
    withWriter(path, { fsync, batchMs: 1 }, (writer) => {
      writer.append(records[0]!);
      writer.sync();
      for (const record of records.slice(1)) writer.append(record);
    });
    const lines = chained(records.map((_, i) => rawLine(i + 1, records[i])));
    expect(readFileSync(path, 'utf8')).toBe(`${lines.join('\n')}\n`);
    expect(readLog(path)).toEqual({ records: lines.map((line) => JSON.parse(line) as unknown), torn: undefined });
  });

  it.each<[string, LogWriterOptions, RegExp]>([
    ['an unknown fsync mode', { fsync: 'sometimes' as FsyncMode }, /fsync/],
    ['a zero batchMs', { batchMs: 0 }, /batchMs/],
    ['a fractional batchMs', { batchMs: 1.5 }, /batchMs/],
    ['a NaN batchMs', { batchMs: Number.NaN }, /batchMs/],
  ])('rejects %s with a UsageError naming the option', (_name, options, named) => {
    const path = join(tempDir(), 'events.jsonl');
    expect(() => LogWriter.open(path, options)).toThrow(UsageError);
    expect(() => LogWriter.open(path, options)).toThrow(named);
  });

  it('refuses to append after close', () => {
    const writer = LogWriter.open(join(tempDir(), 'events.jsonl'));
    writer.close();
    expect(() => writer.append(newRecord(1))).toThrow(/closed/);
  });

  it('cuts a torn tail off at open and reports what it cut', () => {
    const path = join(tempDir(), 'events.jsonl');
    const torn = '{"seq":3,"ts":"2026-11-22T10:00:0é';
    writeFileSync(path, `${rawLine(1)}\n${rawLine(2)}\n${torn}`);
    const committed = Buffer.byteLength(`${rawLine(1)}\n${rawLine(2)}\n`);
    withWriter(path, {}, (writer) => {
      expect(writer.repairedTail).toEqual({ offset: committed, bytes: Buffer.byteLength(torn), text: torn });
      expect(writer.append(newRecord(3)).seq).toBe(3);
    });
    expect(readLog(path)).toMatchObject({ records: [{ seq: 1 }, { seq: 2 }, { seq: 3 }], torn: undefined });
  });

  it('caps the text of a huge torn tail at 64 KiB without splitting a character', () => {
    const path = join(tempDir(), 'events.jsonl');
    const torn = `{"data":"${'€'.repeat(40_000)}`;
    writeFileSync(path, `${rawLine(1)}\n${torn}`);
    withWriter(path, {}, (writer) => {
      const tail = writer.repairedTail!;
      expect(tail.bytes).toBe(Buffer.byteLength(torn));
      expect(Buffer.byteLength(tail.text)).toBeLessThanOrEqual(64 * 1024);
      expect(Buffer.byteLength(tail.text)).toBeGreaterThan(64 * 1024 - 3);
      expect(torn.startsWith(tail.text)).toBe(true);
    });
  });

  it.each([
    ['is not JSON', '{"seq":1,'],
    ['has no seq', '{"ts":"2026-11-22T10:00:00.000Z"}'],
    ['has seq 0', '{"seq":0}'],
  ])('refuses to open a log whose last record %s', (_name, last) => {
    const path = join(tempDir(), 'events.jsonl');
    writeFileSync(path, `${rawLine(1)}\n${last}\n`);
    expect(() => LogWriter.open(path)).toThrow(LogFormatError);
    // The failed open did not keep the file busy.
    writeFileSync(path, `${rawLine(1)}\n`);
    withWriter(path, {}, (writer) => expect(writer.lastSeq).toBe(1));
  });

  it('refuses a path whose last component is a symlink', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'real'));
    writeFileSync(join(dir, 'real', 'events.jsonl'), '');
    symlinkSync(join(dir, 'real', 'events.jsonl'), join(dir, 'link.jsonl'));
    expect(() => LogWriter.open(join(dir, 'link.jsonl'))).toThrow(/link\.jsonl: is a symbolic link/);
  });
});

describe('a writer killed mid-append', () => {
  it('leaves a log that reads, repairs and takes appends, and no process behind', async () => {
    const path = join(tempDir(), 'events.jsonl');
    const fixture = fileURLToPath(new URL('../fixtures/store/appendLoop.mjs', import.meta.url));
    // stdin stays a pipe: the fixture exits by itself if it ever sees it close.
    const child = spawn(process.execPath, [fixture, path], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = once(child, 'exit');
    try {
      const [said] = (await once(child.stdout, 'data')) as [Buffer];
      expect(said.toString()).toBe('appended 1000\n');
      child.kill('SIGKILL');
      expect(await exited).toEqual([null, 'SIGKILL']);
    } finally {
      child.kill('SIGKILL');
    }
    expect(() => process.kill(child.pid!, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));

    const { records, torn } = readLog(path);
    expect(records.length).toBeGreaterThanOrEqual(1000);
    expect(records.every((record, i) => record.seq === i + 1)).toBe(true);
    withWriter(path, {}, (writer) => {
      expect(writer.repairedTail).toEqual(torn);
      expect(writer.append(newRecord(0)).seq).toBe(records.length + 1);
    });
    const after = readLog(path);
    expect(after.torn).toBeUndefined();
    expect(after.records.map((r) => r.seq)).toEqual([...records.map((r) => r.seq), records.length + 1]);
  });
});
