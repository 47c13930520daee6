import { appendFileSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { LogFormatError } from '../../src/errors.js';
import { followLog } from '../../src/store/logFollow.js';
import { LogWriter } from '../../src/store/logWriter.js';
import type { LogRecord } from '../../src/store/record.js';
import { newRecord, rawLine } from '../fixtures/store/records.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();

/**
 * Appends raw bytes and resolves once the change has been announced and every watcher of the file
 * (the follower's too, which libuv serves from the same inotify read) has had its turn.
 */
async function appendAndSettle(path: string, bytes: string | Buffer): Promise<void> {
  const watcher = watch(path);
  const changed = new Promise((resolve) => watcher.once('change', resolve));
  appendFileSync(path, bytes);
  await changed;
  watcher.close();
  await nextTurn();
  await nextTurn();
}

function follow(path: string) {
  const stop = new AbortController();
  const iterator = followLog(path, { signal: stop.signal })[Symbol.asyncIterator]();
  const next = async (): Promise<LogRecord> => {
    const result = await iterator.next();
    if (result.done) throw new Error('the follow ended early');
    return result.value;
  };
  return { stop, iterator, next };
}

describe('followLog', () => {
  it('yields the existing records first, then each appended one as it arrives', async () => {
    const path = join(tempDir(), 'events.jsonl');
    const writer = LogWriter.open(path);
    try {
      for (let n = 1; n <= 3; n++) writer.append(newRecord(n));
      const { stop, iterator, next } = follow(path);
      expect([(await next()).seq, (await next()).seq, (await next()).seq]).toEqual([1, 2, 3]);
      const pending = next();
      writer.append(newRecord(4));
      expect(await pending).toEqual({ seq: 4, ...newRecord(4), sum: expect.stringMatching(/^[0-9a-f]{8}$/) });
      writer.append(newRecord(5));
      writer.append(newRecord(6));
      expect([(await next()).seq, (await next()).seq]).toEqual([5, 6]);
      const ended = iterator.next();
      stop.abort();
      expect(await ended).toEqual({ done: true, value: undefined });
    } finally {
      writer.close();
    }
  });

  it('does not yield a torn line until its newline arrives', async () => {
    const path = join(tempDir(), 'events.jsonl');
    writeFileSync(path, `${rawLine(1)}\n`);
    const { stop, next } = follow(path);
    expect((await next()).seq).toBe(1);
    let arrived: LogRecord | undefined;
    const pending = next().then((record) => (arrived = record));
    const line = rawLine(2, { data: { text: 'split é here' } });
    const cut = Buffer.from(line).indexOf('é') + 1;
    await appendAndSettle(path, Buffer.from(line).subarray(0, cut));
    expect(arrived).toBeUndefined();
    appendFileSync(path, Buffer.concat([Buffer.from(line).subarray(cut), Buffer.from('\n')]));
    expect(JSON.stringify(await pending)).toBe(line);
    stop.abort();
  });

  it('picks up the record a new writer appends after cutting off a torn line', async () => {
    const path = join(tempDir(), 'events.jsonl');
    writeFileSync(path, `${rawLine(1)}\n`);
    const { stop, next } = follow(path);
    expect((await next()).seq).toBe(1);
    const pending = next();
    await appendAndSettle(path, '{"seq":2,"ts":"garbage that a crash left');
    const writer = LogWriter.open(path);
    expect(writer.repairedTail?.bytes).toBeGreaterThan(0);
    writer.append(newRecord(2, { type: 'after.repair' }));
    writer.close();
    expect(await pending).toMatchObject({ seq: 2, type: 'after.repair' });
    stop.abort();
  });

  it('waits for a log that does not exist yet', async () => {
    const path = join(tempDir(), 'events.jsonl');
    const { stop, next } = follow(path);
    const first = next();
    const writer = LogWriter.open(path);
    writer.append(newRecord(1));
    writer.append(newRecord(2));
    expect((await first).seq).toBe(1);
    expect((await next()).seq).toBe(2);
    writer.close();
    stop.abort();
  });

  it('ends a for-await loop cleanly when the signal aborts', async () => {
    const path = join(tempDir(), 'events.jsonl');
    writeFileSync(path, [1, 2, 3, 4].map((seq) => `${rawLine(seq)}\n`).join(''));
    const stop = new AbortController();
    const seen: number[] = [];
    for await (const record of followLog(path, { signal: stop.signal })) {
      seen.push(record.seq);
      if (record.seq === 2) stop.abort();
    }
    expect(seen).toEqual([1, 2]);
  });

  it('ends at once while waiting for a log that never appears', async () => {
    const path = join(tempDir(), 'events.jsonl');
    const { stop, iterator } = follow(path);
    const ended = iterator.next();
    stop.abort();
    expect(await ended).toEqual({ done: true, value: undefined });
  });

  it('throws the reader’s LogFormatError for a bad line appended while following', async () => {
    const path = join(tempDir(), 'events.jsonl');
    writeFileSync(path, `${rawLine(1)}\n`);
    const { stop, next } = follow(path);
    expect((await next()).seq).toBe(1);
    const pending = next();
    appendFileSync(path, `${rawLine(1)}\n`);
    await expect(pending).rejects.toThrow(new LogFormatError(path, 2, 'seq 1 is not greater than 1'));
    stop.abort();
  });
});
