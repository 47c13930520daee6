import { closeSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync } from 'node:fs';
import { readSync, realpathSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { LogBusyError, LogFormatError, RecordTooLargeError, UsageError } from '../errors.js';
import { markGap, MarkWriter, readMark, type CommitMark } from './commitMark.js';
import { tornTailOf } from './logReader.js';
import { appendProblem, chainSum, MAX_RECORD_BYTES, sumHex, trailingSum, type LogRecord, type NewRecord } from './record.js';
import { openStateFile, stateFileError } from './stateFile.js';

/** When appends reach the disk: after every record, at most every `batchMs`, or when the OS decides. */
export type FsyncMode = 'always' | 'batch' | 'never';

/** How a {@link LogWriter} syncs. */
export interface LogWriterOptions {
  /** Default 'batch'. */
  fsync?: FsyncMode;
  /** The longest a 'batch' write waits for its fsync, in ms. Default 50. */
  batchMs?: number;
}

/** The bytes after the last '\n' of a log: a record whose append was cut short by a crash. */
export interface TornTail {
  /** The byte offset where the unfinished line starts. */
  offset: number;
  /** Its length in bytes. */
  bytes: number;
  /** Its first 64 KiB decoded as UTF-8, so the cut can be logged. */
  text: string;
}

const FSYNC_MODES: readonly FsyncMode[] = ['always', 'batch', 'never'];
const CHUNK_BYTES = 64 * 1024;
const NEWLINE = 0x0a;
// Real paths of the logs this process has a writer for.
const openPaths = new Set<string>();

/**
 * The single appender of an event log. A record is committed once its '\n' is on disk; at open,
 * any bytes after the last '\n' (a crash mid-append) are cut off and reported as `repairedTail`.
 *
 * @example
 * const writer = LogWriter.open('.warden/events.jsonl', { fsync: 'batch' });
 * const envelope = { ts: new Date().toISOString(), runId, epoch, actor: 'runner' };
 * if (writer.repairedTail) writer.append({ ...envelope, type: 'log.tornTail', data: { ...writer.repairedTail } });
 * writer.append({ ...envelope, type: 'run.started', data: { pid, hostname, resumedFromSeq: writer.lastSeq } });
 * writer.close();
 */
export class LogWriter {
  /** The path the log was opened with. */
  readonly path: string;
  /** The torn last line cut off at open, if there was one, so the caller can log what was lost. */
  readonly repairedTail: TornTail | undefined;
  readonly #key: string;
  readonly #options: Required<LogWriterOptions>;
  #fd: number | undefined;
  #lastSeq: number;
  #committedSeq: number;
  // The chain sum of the last record staged, and of the last one written.
  #lastSum: number;
  #committedSum: number;
  // The committed last record's sum as the mark names it: '' while that record is unchained (legacy).
  #markSum: string;
  // The commit mark beside the log, rewritten after each fsync; none in 'never' mode.
  #mark: MarkWriter | undefined;
  #staged: string[] = [];
  #size: number;
  #timer: NodeJS.Timeout | undefined;
  // A failed batch fsync cannot throw from its timer; it surfaces from the next call instead.
  #syncError: unknown;

  private constructor(path: string, key: string, fd: number, found: Recovered, options: Required<LogWriterOptions>) {
    this.path = path;
    this.repairedTail = found.repairedTail;
    this.#key = key;
    this.#options = options;
    this.#fd = fd;
    this.#lastSeq = found.lastSeq;
    this.#committedSeq = found.lastSeq;
    this.#lastSum = found.lastSum;
    this.#committedSum = found.lastSum;
    this.#markSum = found.lastChained ? sumHex(found.lastSum) : '';
    this.#size = found.size;
  }

  /** Opens (creating it and its directory if missing) the log for appending, repairing a torn tail. */
  static open(path: string, options: LogWriterOptions = {}): LogWriter {
    const valid = validateOptions(options);
    const dir = dirname(resolve(path));
    let key: string;
    try {
      mkdirSync(dir, { recursive: true });
      key = join(realpathSync(dir), basename(path));
    } catch (error) {
      throw stateFileError(dir, error);
    }
    // Checked before opening: a second writer must not even repair a file the first is appending to.
    if (openPaths.has(key)) throw new LogBusyError(path);
    // Read before the log: the mark only ever trails what the log holds.
    const mark = readMark(path);
    const fd = openStateFile(path, { access: 'append' });
    let writer: LogWriter | undefined;
    try {
      const recovered = recover(fd, path, valid.fsync !== 'never', mark);
      writer = new LogWriter(path, key, fd, recovered, valid);
      if (valid.fsync !== 'never') writer.#mark = new MarkWriter(path);
      openPaths.add(key);
      return writer;
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  /** The seq of the last record appended or staged; 0 for an empty log. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /**
   * Appends the record as one line with the next seq and returns it (the reader reads back its
   * JSON form: a Date in `data` comes back as a string). Throws
   * {@link RecordTooLargeError} if the line would be too long, and {@link UsageError} if it would
   * not read back as a valid record; either way nothing is written.
   */
  append(record: NewRecord): LogRecord {
    const written = this.stage(record);
    this.commit();
    return written;
  }

  /**
   * Takes the record into the next commit: assigns the next seq, checks that the reader will
   * accept it, serialises it. Nothing reaches the file before {@link commit}.
   * Staging many records and committing once is a group commit: one write (and, per the fsync
   * mode, one fsync) for the lot.
   */
  stage(record: NewRecord): LogRecord {
    this.#open();
    const { ts, runId, epoch, actor, type, data, state, hash, effects } = record;
    const written: LogRecord = { seq: this.#lastSeq + 1, ts, runId, epoch, actor, type, data };
    if (state !== undefined || hash !== undefined || effects !== undefined) Object.assign(written, { state, hash, effects });
    // Checked before writing, so nothing the reader would refuse is ever committed.
    const problem = appendProblem(written);
    if (problem) throw new UsageError(`cannot append a ${String(type)} record: ${problem}`);
    const covered = serialise(written);
    const sum = chainSum(covered, this.#lastSum);
    written.sum = sumHex(sum);
    const line = `${covered},"sum":"${written.sum}"}`;
    // A UTF-16 unit is at most 3 UTF-8 bytes: count exactly only when the line could be too long.
    const bytes = line.length * 3 <= MAX_RECORD_BYTES ? line.length : Buffer.byteLength(line);
    if (bytes > MAX_RECORD_BYTES) throw new RecordTooLargeError(bytes, MAX_RECORD_BYTES, type);
    this.#staged.push(line);
    this.#lastSeq = written.seq;
    this.#lastSum = sum;
    return written;
  }

  /** Writes every staged record with one write and syncs per the fsync mode. */
  commit(): void {
    const fd = this.#open();
    if (this.#staged.length === 0) return;
    const text = this.#staged.length === 1 ? `${this.#staged[0]}\n` : `${this.#staged.join('\n')}\n`;
    this.#staged = [];
    let length: number;
    try {
      // Writing the string skips a Buffer copy; a short write (disk nearly full) finishes from one.
      const done = writeSync(fd, text);
      length = Buffer.byteLength(text);
      if (done < length) {
        const buffer = Buffer.from(text);
        for (let at = done; at < length; ) at += writeSync(fd, buffer, at);
      }
    } catch (error) {
      // A half-written line would sit under every later append: take it back out.
      ftruncateSync(fd, this.#size);
      this.#lastSeq = this.#committedSeq;
      this.#lastSum = this.#committedSum;
      throw error;
    }
    this.#size += length;
    this.#committedSeq = this.#lastSeq;
    this.#committedSum = this.#lastSum;
    this.#markSum = sumHex(this.#lastSum);
    if (this.#options.fsync === 'always') this.#syncAndMark(fd);
    else if (this.#options.fsync === 'batch' && this.#timer === undefined) {
      this.#timer = setTimeout(() => this.#batchSync(), this.#options.batchMs).unref();
    }
  }

  /** Flushes everything appended so far to disk now, whatever the fsync mode. */
  sync(): void {
    const fd = this.#open();
    this.#cancelBatch();
    this.#syncAndMark(fd);
  }

  /** Drops what is staged (nothing of it is written) and closes the file. For a writer that must stop writing. */
  discard(): void {
    this.#staged = [];
    this.#lastSeq = this.#committedSeq;
    this.#lastSum = this.#committedSum;
    this.close();
  }

  /** Commits what is staged, syncs (unless fsync is 'never') and closes the file. Safe to call twice. */
  close(): void {
    const fd = this.#fd;
    if (fd === undefined) return;
    this.commit();
    this.#fd = undefined;
    this.#cancelBatch();
    openPaths.delete(this.#key);
    try {
      if (this.#options.fsync !== 'never') this.#syncAndMark(fd);
    } finally {
      closeSync(fd);
      this.#mark?.close();
      this.#mark = undefined;
    }
    this.#throwSyncError();
  }

  #open(): number {
    if (this.#fd === undefined) throw new UsageError(`the log writer for ${this.path} is closed`);
    this.#throwSyncError();
    return this.#fd;
  }

  #batchSync(): void {
    this.#timer = undefined;
    if (this.#fd === undefined) return;
    try {
      this.#syncAndMark(this.#fd);
    } catch (error) {
      this.#syncError ??= error;
    }
  }

  /** fsync, then move the commit mark up to what that fsync made durable. */
  #syncAndMark(fd: number): void {
    fsyncSync(fd);
    if (this.#committedSeq > 0) this.#mark?.update({ seq: this.#committedSeq, offset: this.#size, sum: this.#markSum });
  }

  #cancelBatch(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #throwSyncError(): void {
    const error = this.#syncError;
    this.#syncError = undefined;
    if (error !== undefined) throw error;
  }
}

function validateOptions(options: LogWriterOptions): Required<LogWriterOptions> {
  const { fsync = 'batch', batchMs = 50 } = options;
  if (!FSYNC_MODES.includes(fsync)) {
    throw new UsageError(`fsync must be one of ${FSYNC_MODES.join(', ')}, got ${String(fsync)}`);
  }
  if (!Number.isInteger(batchMs) || batchMs < 1) {
    throw new UsageError(`batchMs must be a positive integer, got ${batchMs}`);
  }
  return { fsync, batchMs };
}

// Fixed key order, so equal records are equal lines (and `sum` is always last). The envelope's fields are checked
// primitives, so only the nested values need JSON.stringify.
function serialise(r: LogRecord): string {
  const data = JSON.stringify(r.data);
  // undefined (or a function) has no JSON form: the line would not parse.
  if (data === undefined) throw new UsageError(`cannot append a ${r.type} record: data must be a JSON value`);
  let line = `{"seq":${r.seq},"ts":${JSON.stringify(r.ts)},"runId":${JSON.stringify(r.runId)},"epoch":${r.epoch},"actor":${JSON.stringify(r.actor)},"type":${JSON.stringify(r.type)},"data":${data}`;
  if (r.state !== undefined) line += `,"state":${JSON.stringify(r.state)}`;
  if (r.hash !== undefined) line += `,"hash":"${r.hash}"`;
  if (r.effects !== undefined) line += `,"effects":${JSON.stringify(r.effects)}`;
  // Left open: the chain sum over these bytes closes it.
  return line;
}

type Recovered = { size: number; lastSeq: number; lastSum: number; lastChained: boolean; repairedTail: TornTail | undefined };

/**
 * Cuts a torn tail off and reads the seq and chain sum of the last committed line, reading only
 * the file's end. A log shorter than its commit mark, or whose mark does not fall on a line's
 * end, lost committed records: that is refused before anything is cut.
 */
function recover(fd: number, file: string, durable: boolean, mark: CommitMark | undefined): Recovered {
  let size = fstatSync(fd).size;
  if (mark) checkAgainstMark(fd, file, size, mark);
  const lastNewline = findNewlineBefore(fd, file, size, 'last line');
  let repairedTail: TornTail | undefined;
  if (lastNewline + 1 < size) {
    const offset = lastNewline + 1;
    const head = readAt(fd, offset, Math.min(size - offset, CHUNK_BYTES + 4));
    repairedTail = tornTailOf(offset, size - offset, head);
    ftruncateSync(fd, offset);
    // The repair must reach the disk before the appends that follow it.
    if (durable) fsyncSync(fd);
    size = offset;
  }
  if (lastNewline === -1) return { size, lastSeq: 0, lastSum: 0, lastChained: false, repairedTail };
  const lineStart = findNewlineBefore(fd, file, lastNewline, 'last record') + 1;
  const text = readAt(fd, lineStart, lastNewline - lineStart).toString('utf8');
  let seq: unknown;
  try {
    seq = (JSON.parse(text) as { seq?: unknown } | null)?.seq;
  } catch (error) {
    throw new LogFormatError(file, 0, `last record is not JSON: ${(error as Error).message}`);
  }
  if (!Number.isInteger(seq) || (seq as number) < 1) {
    throw new LogFormatError(file, 0, 'last record has no positive integer seq');
  }
  // A log written before sums existed goes on with a chain started from 0, as readers expect.
  const sum = trailingSum(text);
  return { size, lastSeq: seq as number, lastSum: sum === undefined ? 0 : Number.parseInt(sum, 16), lastChained: sum !== undefined, repairedTail };
}

/** Throws unless the log still holds everything its mark says was committed. */
function checkAgainstMark(fd: number, file: string, size: number, mark: CommitMark): void {
  const lineEnd = mark.offset > 0 && mark.offset <= size ? readAt(fd, mark.offset - 1, 1)[0] : undefined;
  if (lineEnd === NEWLINE) return;
  throw new LogFormatError(file, 0, markGap(file, size, mark));
}


/**
 * The offset of the last '\n' before `end`, or -1 if there is none. Reads backwards in chunks and
 * gives up past the longest line a writer could have written, so opening a huge log reads ~1 MiB.
 */
function findNewlineBefore(fd: number, file: string, end: number, what: string): number {
  const floor = Math.max(0, end - MAX_RECORD_BYTES - 1);
  const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  for (let stop = end; stop > floor; ) {
    const start = Math.max(floor, stop - CHUNK_BYTES);
    const n = readSync(fd, chunk, 0, stop - start, start);
    const at = chunk.subarray(0, n).lastIndexOf(NEWLINE);
    if (at !== -1) return start + at;
    stop = start;
  }
  if (floor > 0) throw new LogFormatError(file, 0, `${what} is longer than ${MAX_RECORD_BYTES} bytes`);
  return -1;
}

// One read: a regular file returns all that was asked for up to its end.
function readAt(fd: number, position: number, length: number): Buffer {
  const buffer = Buffer.allocUnsafe(length);
  return buffer.subarray(0, readSync(fd, buffer, 0, length, position));
}
