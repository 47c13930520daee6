import { closeSync, openSync, readSync } from 'node:fs';
import { LogFormatError, UsageError } from '../errors.js';
import { describeIssue } from './catalogue.js';
import { MAX_RECORD_BYTES, recordSchema, transitionFieldsProblem, type LogRecord } from './record.js';
import type { TornTail } from './logWriter.js';

/** How a log is read and validated. */
export interface ReadOptions {
  /** Extra validation run on every record in order (the catalogue checker); returns a reason or undefined. */
  check?: (record: LogRecord) => string | undefined;
  /** The longest line accepted, in bytes without the newline. Default {@link MAX_RECORD_BYTES}. */
  maxRecordBytes?: number;
  /** How the file is named in errors. Default the path as given. */
  displayName?: string;
}

const CHUNK_BYTES = 64 * 1024;
const NEWLINE = 0x0a;
const TORN_TEXT_BYTES = 64 * 1024;
const MAX_REASON_CHARS = 200;

/** Parses one line into a record (JSON, envelope, transition fields), or says why it is not one. */
export function parseRecord(text: string): LogRecord | string {
  if (text.length === 0) return 'empty line';
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return `not JSON: ${(error as Error).message}`;
  }
  const result = recordSchema.safeParse(value);
  if (!result.success) return `bad record: ${describeIssue(result.error.issues[0])}`;
  return transitionFieldsProblem(result.data) ?? result.data;
}

/** Describes the bytes after the last newline; `head` holds at least their first 64 KiB + 1. */
export function tornTailOf(offset: number, bytes: number, head: Buffer): TornTail {
  let end = Math.min(bytes, head.length, TORN_TEXT_BYTES);
  // Cut at a character boundary rather than leave a replacement character at the cap.
  if (end < bytes) while (end > 0 && ((head[end] ?? 0) & 0xc0) === 0x80) end--;
  return { offset, bytes, text: head.toString('utf8', 0, end) };
}

/**
 * Reads validated records from an open log file (the caller's fd), one complete line at a time.
 * It reads at explicit offsets, so it can be asked again after the file grows, as followLog does.
 */
export class LogCursor {
  readonly #fd: number;
  readonly #file: string;
  readonly #check: ReadOptions['check'];
  readonly #maxBytes: number;
  #buf = Buffer.allocUnsafe(CHUNK_BYTES);
  // The filled part of #buf; indexOf on it cannot run into stale bytes beyond #end.
  #view = this.#buf.subarray(0, 0);
  #start = 0;
  #scan = 0;
  #end = 0;
  #offset = 0;
  #line = 0;
  #lastSeq = 0;
  #bytesRead = 0;

  constructor(fd: number, file: string, options: ReadOptions = {}) {
    const maxBytes = options.maxRecordBytes ?? MAX_RECORD_BYTES;
    if (!Number.isInteger(maxBytes) || maxBytes < 1) {
      throw new UsageError(`maxRecordBytes must be a positive integer, got ${maxBytes}`);
    }
    this.#fd = fd;
    this.#file = file;
    this.#check = options.check;
    this.#maxBytes = maxBytes;
  }

  /** The seq of the last record returned, 0 before the first. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** The file offset just after the last complete line returned. */
  get offset(): number {
    return this.#offset;
  }

  /** Bytes read from the file so far (an unfinished line read again counts again). */
  get bytesRead(): number {
    return this.#bytesRead;
  }

  /** The next record, or undefined when no complete line is left in the file as it is now. */
  next(): LogRecord | undefined {
    const text = this.#nextLine();
    if (text === undefined) return undefined;
    const parsed = parseRecord(text);
    if (typeof parsed === 'string') throw this.#error(parsed);
    if (parsed.seq <= this.#lastSeq) throw this.#error(`seq ${parsed.seq} is not greater than ${this.#lastSeq}`);
    const reason = this.#check?.(parsed);
    if (reason !== undefined) throw this.#error(reason);
    this.#lastSeq = parsed.seq;
    return parsed;
  }

  /** After `next()` returned undefined: the unfinished last line, if the file does not end with '\n'. */
  tail(): TornTail | undefined {
    const bytes = this.#end - this.#start;
    if (bytes === 0) return undefined;
    return tornTailOf(this.#offset, bytes, this.#buf.subarray(this.#start, this.#end));
  }

  /** Forgets the unfinished line, so the next read starts again where it starts (a writer may cut it). */
  rewind(): void {
    this.#end = this.#scan = this.#start;
    this.#view = this.#buf.subarray(0, this.#end);
  }

  #nextLine(): string | undefined {
    for (;;) {
      const newline = this.#view.indexOf(NEWLINE, this.#scan);
      // A line in progress counts too: a 20 MB line fails at 1 MiB, without holding the rest.
      if ((newline === -1 ? this.#end : newline) - this.#start > this.#maxBytes) {
        this.#line++;
        throw this.#error(`line is longer than ${this.#maxBytes} bytes`);
      }
      if (newline !== -1) {
        const start = this.#start;
        this.#line++;
        this.#offset += newline + 1 - start;
        this.#start = this.#scan = newline + 1;
        return this.#buf.toString('utf8', start, newline);
      }
      this.#scan = this.#end;
      if (!this.#fill()) return undefined;
    }
  }

  /** Reads the next chunk after the unfinished line; false at the end of the file. */
  #fill(): boolean {
    if (this.#start > 0) {
      this.#buf.copy(this.#buf, 0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#scan -= this.#start;
      this.#start = 0;
    }
    if (this.#end === this.#buf.length) {
      // Only one line is ever held, and it is cut off just past maxBytes: the cap bounds memory.
      const grown = Buffer.allocUnsafe(Math.min(this.#buf.length * 2, this.#maxBytes + CHUNK_BYTES));
      this.#buf.copy(grown, 0, 0, this.#end);
      this.#buf = grown;
    }
    const n = readSync(this.#fd, this.#buf, this.#end, this.#buf.length - this.#end, this.#offset + this.#end);
    this.#bytesRead += n;
    this.#end += n;
    this.#view = this.#buf.subarray(0, this.#end);
    return n > 0;
  }

  #error(reason: string): LogFormatError {
    return new LogFormatError(this.#file, this.#line, oneLine(reason));
  }
}

// Only on the error path, so the regex costs nothing per record.
function oneLine(reason: string): string {
  const flat = reason.replace(/[\r\n\u2028\u2029]+/g, ' ');
  return flat.length > MAX_REASON_CHARS ? `${flat.slice(0, MAX_REASON_CHARS - 1)}…` : flat;
}

/** Opens a log for reading; a missing file is the caller's mistake, not an I/O failure. */
export function openLog(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UsageError(`no event log at ${path}`, { cause: error });
    }
    throw error;
  }
}

/**
 * Streams the records of an event log, validating each line in order. A line that is not a valid
 * record throws {@link LogFormatError}; the unfinished bytes after the last '\n' (a crash
 * mid-append) are never parsed and are reported as {@link LogReader.torn} instead.
 *
 * @example
 * const reader = new LogReader('.warden/events.jsonl', { check: createRecordChecker(catalogue) });
 * for (const record of reader) apply(record);
 * if (reader.torn) console.warn(`torn tail of ${reader.torn.bytes} bytes`);
 */
export class LogReader implements Iterable<LogRecord> {
  readonly #path: string;
  readonly #options: ReadOptions;
  #cursor: LogCursor | undefined;
  #torn: TornTail | undefined;

  constructor(path: string, options: ReadOptions = {}) {
    this.#path = path;
    this.#options = options;
  }

  *[Symbol.iterator](): Iterator<LogRecord> {
    const fd = openLog(this.#path);
    try {
      const cursor = new LogCursor(fd, this.#options.displayName ?? this.#path, this.#options);
      this.#cursor = cursor;
      this.#torn = undefined;
      for (let record = cursor.next(); record !== undefined; record = cursor.next()) yield record;
      this.#torn = cursor.tail();
    } finally {
      closeSync(fd);
    }
  }

  /** The unfinished last line, once iteration reached the end; undefined if the file ends with '\n'. */
  get torn(): TornTail | undefined {
    return this.#torn;
  }

  /** The seq of the last record yielded, 0 before the first. */
  get lastSeq(): number {
    return this.#cursor?.lastSeq ?? 0;
  }

  /** Bytes read from the file so far. */
  get bytesRead(): number {
    return this.#cursor?.bytesRead ?? 0;
  }
}

/**
 * Reads a whole event log into memory.
 *
 * @example
 * const { records, torn } = readLog('.warden/events.jsonl');
 */
export function readLog(path: string, options: ReadOptions = {}): { records: LogRecord[]; torn: TornTail | undefined } {
  const fd = openLog(path);
  try {
    // A plain loop rather than spreading a LogReader: no generator step per record on this path.
    const cursor = new LogCursor(fd, options.displayName ?? path, options);
    const records: LogRecord[] = [];
    for (let record = cursor.next(); record !== undefined; record = cursor.next()) records.push(record);
    return { records, torn: cursor.tail() };
  } finally {
    closeSync(fd);
  }
}
