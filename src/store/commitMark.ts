/**
 * The commit mark: a small fixed-size file beside the log (`events.jsonl.mark`) holding the
 * seq, end offset and chain sum of the last record known to be on disk. The writer rewrites it
 * in place after each fsync of the log, so it never claims more than the disk holds; a crash can
 * only tear the record being written, above the mark. A log that ends below its mark lost
 * committed records (it was cut, emptied or replaced), and every reader refuses it.
 */
import { closeSync, fstatSync, ftruncateSync, readSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { LogFormatError } from '../errors.js';
import { chainSum, sumHex } from './record.js';
import { openStateFile, stateFileError } from './stateFile.js';

/** What the log had committed, durably, when the mark was last written. */
export interface CommitMark {
  seq: number;
  /** Byte offset just after that record's newline: the least size the log may have. */
  offset: number;
  /** That record's chain sum (8 hex digits), or '' for an unchained (legacy) record. */
  sum: string;
}

/** The mark is one line padded to this many bytes, so a rewrite in place never changes its size. */
export const MARK_BYTES = 96;
const MARK_LINE = /^warden-mark 1 seq=(\d+) offset=(\d+) sum=([0-9a-f]{8}|-) check=([0-9a-f]{8}) *\n$/;

export function markPathOf(logPath: string): string {
  return `${logPath}.mark`;
}

/** The mark's bytes: fixed length, with a CRC of its own fields so a damaged mark is told from a real one. */
export function formatMark(mark: CommitMark): Buffer {
  const fields = `seq=${mark.seq} offset=${mark.offset} sum=${mark.sum || '-'}`;
  const line = `warden-mark 1 ${fields} check=${sumHex(chainSum(fields, 0))}`;
  return Buffer.from(`${line.padEnd(MARK_BYTES - 1)}\n`);
}

/**
 * Reads the mark of `logPath`; undefined if there is none (a log written before marks existed,
 * or one never synced). A mark that is not one Warden wrote is a LogFormatError naming it.
 */
export function readMark(logPath: string, displayName = logPath): CommitMark | undefined {
  const path = markPathOf(logPath);
  const name = markPathOf(displayName);
  let fd: number;
  try {
    fd = openStateFile(path, { displayName: name });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    // A read can meet a writer's rewrite half done: a mark that fails its check is read again.
    let parsed: CommitMark | undefined | 'bad' = 'bad';
    for (let attempt = 0; attempt < MARK_READS && parsed === 'bad'; attempt++) parsed = parseMark(readMarkText(fd, name));
    if (parsed !== 'bad') return parsed;
  } finally {
    closeSync(fd);
  }
  throw new LogFormatError(name, 1, `not a commit mark Warden wrote (${MARK_BYTES} bytes "warden-mark 1 seq=… offset=… sum=… check=…"); if ${displayName} itself is intact, remove the mark`);
}

const MARK_READS = 3;

function readMarkText(fd: number, name: string): string {
  try {
    const buffer = Buffer.alloc(MARK_BYTES + 1);
    const n = readSync(fd, buffer, 0, buffer.length, 0);
    return buffer.toString('latin1', 0, n);
  } catch (error) {
    throw stateFileError(name, error);
  }
}

/** The mark in `text`; undefined for an empty file (created at the writer's open, written at its first fsync); 'bad' if not a mark. */
function parseMark(text: string): CommitMark | undefined | 'bad' {
  if (text.length === 0) return undefined;
  const match = MARK_LINE.exec(text);
  const fields = match ? `seq=${match[1]} offset=${match[2]} sum=${match[3]}` : '';
  if (!match || text.length !== MARK_BYTES || sumHex(chainSum(fields, 0)) !== match[4]) return 'bad';
  return { seq: Number(match[1]), offset: Number(match[2]), sum: match[3] === '-' ? '' : match[3]! };
}

/** Keeps a log's mark file open and rewrites it in place (one pwrite, no fsync of its own). */
export class MarkWriter {
  readonly #fd: number;
  #written = '';

  constructor(logPath: string) {
    this.#fd = openStateFile(markPathOf(logPath), { access: 'update' });
    // Anything longer than a mark (not ours) is cut to size; the first update rewrites it whole.
    if (fstatSync(this.#fd).size > MARK_BYTES) ftruncateSync(this.#fd, MARK_BYTES);
  }

  /**
   * Records `mark` as committed. Called only after the log's fsync returned: the mark then never
   * gets to disk ahead of the records it names. It needs no fsync of its own — a mark lost to a
   * power cut only lags behind the log, which is safe (it is a lower bound).
   */
  update(mark: CommitMark): void {
    const key = `${mark.seq}:${mark.offset}`;
    if (key === this.#written) return;
    const bytes = formatMark(mark);
    writeSync(this.#fd, bytes, 0, bytes.length, 0);
    this.#written = key;
  }

  close(): void {
    closeSync(this.#fd);
  }
}

/** The one line that says a log lost committed records. */
export function markGap(file: string, size: number, mark: CommitMark, endSeq?: number): string {
  const ends = endSeq === undefined ? `ends at byte ${size}` : `ends at seq ${endSeq} (byte ${size})`;
  const cause = size < mark.offset ? `${mark.offset - size} bytes of committed records are missing` : 'committed records were changed';
  return `${ends}, but seq ${mark.seq} was committed up to byte ${mark.offset} (per ${basename(markPathOf(file))}): ${cause}; restore the log, or remove the mark to accept the loss`;
}
