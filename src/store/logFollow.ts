import { closeSync, fstatSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { LogFormatError, UsageError } from '../errors.js';
import { readMark } from './commitMark.js';
import { LogCursor, openLog, type ReadOptions } from './logReader.js';
import type { LogRecord } from './record.js';

/**
 * Follows an event log like `tail -f`: yields every record already in it, then each new record
 * once its complete line is in the file, until `signal` aborts (the iteration then just ends).
 * A file that does not exist yet is waited for. Appends are learnt of from fs.watch (inotify),
 * never by polling. Lines are validated exactly as {@link LogReader} does.
 *
 * @example
 * const stop = new AbortController();
 * for await (const record of followLog('.warden/events.jsonl', { signal: stop.signal })) show(record);
 */
export function followLog(path: string, options: ReadOptions & { signal: AbortSignal }): AsyncIterable<LogRecord> {
  return { [Symbol.asyncIterator]: () => follow(path, options) };
}

async function* follow(path: string, options: ReadOptions & { signal: AbortSignal }): AsyncGenerator<LogRecord> {
  const { signal } = options;
  const wake = new Wakeup();
  signal.addEventListener('abort', wake.notify);
  try {
    const file = options.displayName ?? path;
    const opened = await openWhenPresent(path, file, signal, wake);
    if (opened === undefined) return;
    const { fd, mark } = opened;
    // Watching starts before the first read, so no append can fall between the two.
    const watcher = watchWith(path, wake);
    try {
      const cursor = new LogCursor(fd, file, { ...options, mark });
      while (!signal.aborted) {
        if (fstatSync(fd).size < cursor.offset) {
          throw new LogFormatError(file, 0, `the log was cut below byte ${cursor.offset} while being followed`);
        }
        for (let record = cursor.next(); record !== undefined; record = cursor.next()) {
          yield record;
          if (signal.aborted) return;
        }
        // An unfinished line may yet be cut off by a writer's repair: read it afresh next time.
        cursor.rewind();
        await wake.wait();
      }
    } finally {
      watcher.close();
      closeSync(fd);
    }
  } finally {
    signal.removeEventListener('abort', wake.notify);
  }
}

/** Opens the log (its commit mark read first), watching its directory until it appears; undefined if aborted first. */
async function openWhenPresent(path: string, file: string, signal: AbortSignal, wake: Wakeup): Promise<{ fd: number; mark: ReturnType<typeof readMark> } | undefined> {
  const first = tryOpen(path, file);
  if (first !== undefined) return first;
  const name = basename(path);
  let watcher: FSWatcher;
  try {
    watcher = watch(dirname(path), (_event, changed) => {
      if (changed === null || changed === name) wake.notify();
    });
  } catch (error) {
    throw new UsageError(`cannot watch ${dirname(path)} for the event log ${path}`, { cause: error });
  }
  watcher.on('error', wake.fail);
  try {
    // Tried again once the watch is up: the file may have appeared in between.
    for (let opened = tryOpen(path, file); !signal.aborted; opened = tryOpen(path, file)) {
      if (opened !== undefined) return opened;
      await wake.wait();
    }
    return undefined;
  } finally {
    watcher.close();
  }
}

function tryOpen(path: string, file: string): { fd: number; mark: ReturnType<typeof readMark> } | undefined {
  const mark = readMark(path, file);
  try {
    return { fd: openLog(path, file), mark };
  } catch (error) {
    // Only absence is waited out; a FIFO, link or directory there is refused at once.
    if (error instanceof UsageError && (error.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return undefined;
    throw error;
  }
}

function watchWith(path: string, wake: Wakeup): FSWatcher {
  const watcher = watch(path, wake.notify);
  watcher.on('error', wake.fail);
  return watcher;
}

/**
 * A level-triggered wake-up: a notification that arrives while nobody waits is kept, so the
 * next `wait()` returns at once and a change that came mid-read is never slept through.
 */
class Wakeup {
  #pending = false;
  #resolve: (() => void) | undefined;
  #error: unknown;

  readonly notify = (): void => {
    this.#pending = true;
    this.#resolve?.();
  };

  readonly fail = (error: unknown): void => {
    this.#error ??= error;
    this.notify();
  };

  async wait(): Promise<void> {
    if (!this.#pending) await new Promise<void>((resolve) => (this.#resolve = resolve));
    this.#resolve = undefined;
    this.#pending = false;
    if (this.#error !== undefined) throw this.#error;
  }
}
