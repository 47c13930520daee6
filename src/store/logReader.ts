import { closeSync, readSync } from 'node:fs';
import { LogFormatError, UsageError } from '../errors.js';
import { describeIssue } from './catalogue.js';
import { markGap, readMark, type CommitMark } from './commitMark.js';
import { chainSum, MAX_RECORD_BYTES, recordSchema, SUM_SUFFIX_BYTES, sumHex, trailingSum, transitionFieldsProblem, type LogRecord } from './record.js';
import type { TornTail } from './logWriter.js';
import { openStateFile } from './stateFile.js';

/** How a log is read and validated. */
export interface ReadOptions {
  /** Extra validation run on every record in order (the catalogue checker); returns a reason or undefined. */
  check?: (record: LogRecord) => string | undefined;
  /** The longest line accepted, in bytes without the newline. Default {@link MAX_RECORD_BYTES}. */
  maxRecordBytes?: number;
  /** How the file is named in errors. Default the path as given. */
  displayName?: string;
}

/** What a {@link LogCursor} checks beyond each line: where the chain starts, what was committed. */
export interface CursorOptions extends ReadOptions {
  /**
   * The chain sum the file's first record continues from: 0 (the default) for a log's first
   * file; for a later segment, the last sum of the segment before it.
   */
  chainFrom?: number;
  /** The log's commit mark, read before the file was opened: the file must reach it. */
  mark?: CommitMark;
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
  // Byte bounds (in #buf) of the line #nextLine returned last.
  #lineStart = 0;
  #lineEnd = 0;
  // The chain: the sum the next record continues from, and the seq of the last chained record (0: none yet).
  #chainSum: number;
  #chainedSeq = 0;
  readonly #mark: CommitMark | undefined;
  #markMet = false;

  constructor(fd: number, file: string, options: CursorOptions = {}) {
    const maxBytes = options.maxRecordBytes ?? MAX_RECORD_BYTES;
    if (!Number.isInteger(maxBytes) || maxBytes < 1) {
      throw new UsageError(`maxRecordBytes must be a positive integer, got ${maxBytes}`);
    }
    this.#fd = fd;
    this.#file = file;
    this.#check = options.check;
    this.#maxBytes = maxBytes;
    this.#chainSum = options.chainFrom ?? 0;
    this.#mark = options.mark;
    this.#markMet = options.mark === undefined || options.mark.seq === 0;
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
    if (text === undefined) {
      if (!this.#markMet) throw this.#gap(this.#line + 1);
      return undefined;
    }
    // The sum is checked on the bytes as read, before anything in them is believed.
    const hex = trailingSum(text);
    const expected = hex === undefined ? undefined : sumHex(chainSum(this.#buf.subarray(this.#lineStart, this.#lineEnd - SUM_SUFFIX_BYTES), this.#chainSum));
    const parsed = parseRecord(text);
    if (typeof parsed === 'string') {
      throw this.#error(expected !== hex ? `fails its checksum, and is ${parsed.startsWith('not JSON') ? parsed : `a ${parsed}`}` : parsed);
    }
    if (hex !== undefined && expected !== hex) {
      throw this.#error(`seq ${parsed.seq} fails its checksum (sum ${hex}, chain expects ${expected}): this record was changed, or one before it removed`);
    }
    if (hex === undefined && parsed.sum !== undefined) throw this.#error(`seq ${parsed.seq}: sum must be the record's last field`);
    if (hex === undefined && this.#chainedSeq > 0) {
      throw this.#error(`seq ${parsed.seq} has no sum, after the chained record seq ${this.#chainedSeq}: it was changed or put there by hand`);
    }
    if (parsed.seq <= this.#lastSeq) throw this.#error(`seq ${parsed.seq} is not greater than ${this.#lastSeq}`);
    if (hex !== undefined && this.#chainedSeq > 0 && parsed.seq !== this.#lastSeq + 1) {
      throw this.#error(`seq ${parsed.seq} follows seq ${this.#lastSeq}: records are missing`);
    }
    if (!this.#markMet) this.#checkMark(parsed.seq, hex);
    const reason = this.#check?.(parsed);
    if (reason !== undefined) throw this.#error(reason);
    this.#lastSeq = parsed.seq;
    if (hex !== undefined) {
      this.#chainSum = Number.parseInt(hex, 16);
      this.#chainedSeq = parsed.seq;
    }
    return parsed;
  }

  /** The sum the next record must continue from (for a reader of the next segment). */
  get chainSum(): number {
    return this.#chainSum;
  }

  #checkMark(seq: number, hex: string | undefined): void {
    const mark = this.#mark!;
    if (seq < mark.seq) return;
    if (seq > mark.seq || this.#offset !== mark.offset || (hex ?? '') !== mark.sum) throw this.#gap(this.#line);
    this.#markMet = true;
  }

  #gap(line: number): LogFormatError {
    return new LogFormatError(this.#file, line, markGap(this.#file, this.#offset, this.#mark!, this.#lastSeq));
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
        this.#lineStart = start;
        this.#lineEnd = newline;
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
  // Reasons may quote the line's bytes: no control character reaches a terminal raw.
  const flat = reason
    .replace(/[\r\n\u2028\u2029]+/g, ' ')
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return flat.length > MAX_REASON_CHARS ? `${flat.slice(0, MAX_REASON_CHARS - 1)}…` : flat;
}

/**
 * Opens a log for reading: a regular file only (no symlink, FIFO or directory; never blocking).
 * A missing file is the caller's mistake, not an I/O failure.
 */
export function openLog(path: string, displayName = path): number {
  try {
    return openStateFile(path, { displayName });
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
    const file = this.#options.displayName ?? this.#path;
    // The mark first: it only ever trails the log, so a log read after it must reach it.
    const mark = readMark(this.#path, file);
    const fd = openLog(this.#path, file);
    try {
      const cursor = new LogCursor(fd, file, { ...this.#options, mark });
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
  const file = options.displayName ?? path;
  const mark = readMark(path, file);
  const fd = openLog(path, file);
  try {
    // A plain loop rather than spreading a LogReader: no generator step per record on this path.
    const cursor = new LogCursor(fd, file, { ...options, mark });
    const records: LogRecord[] = [];
    for (let record = cursor.next(); record !== undefined; record = cursor.next()) records.push(record);
    return { records, torn: cursor.tail() };
  } finally {
    closeSync(fd);
  }
}
