/**
 * Reading an agent's output, line by line, for the few lines that matter: a result
 * (`{"type": "result", …}`, keys in any order, of any length) and a rate-limit signal (a
 * `rate_limit_event` whose status is `rejected`; a result that is an API 429; a line matching a
 * configured pattern — patterns see only lines that are not JSON, so an assistant message that
 * mentions a limit never counts). Memory is bounded: a line up to `maxLineBytes` is kept and
 * parsed whole; a longer one is not kept (it still goes to the job's log) but streamed through a
 * scanner that keeps only the small top-level fields of a JSON object — enough to know a result
 * and what it reports, however long its text.
 */
import type { JobResult } from '../store/events/job.events.js';

export interface RateLimitSignal {
  resetsAt: string | null;
  source: string;
}

export interface RateLimitPattern {
  name: string;
  /** Tested against each non-JSON line (stdout or stderr). */
  regex: RegExp;
}

export interface OutputScannerOptions {
  /** Longest line kept and parsed (default 16 MiB). */
  maxLineBytes?: number;
  rateLimitPatterns?: readonly RateLimitPattern[];
  onResult: (result: JobResult) => void;
  onRateLimit: (signal: RateLimitSignal) => void;
  /** Every complete line, with its length (for activity counting). */
  onLine?: (bytes: number) => void;
}

const NEWLINE = 0x0a;

/** Splits one stream into lines without holding more than `maxLineBytes` of any line. */
export class LineScanner {
  private parts: Buffer[] = [];
  private partBytes = 0;
  private overlong = false;
  private fields: TopLevelFields | undefined;
  private readonly max: number;

  constructor(
    private readonly options: OutputScannerOptions,
  ) {
    this.max = options.maxLineBytes ?? 16 * 1024 * 1024;
  }

  push(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE, start); nl >= 0; nl = chunk.indexOf(NEWLINE, start)) {
      this.take(chunk.subarray(start, nl));
      this.endLine();
      start = nl + 1;
    }
    if (start < chunk.length) this.take(chunk.subarray(start));
  }

  /** Bytes of the current line held in memory (at most `maxLineBytes`). */
  get heldBytes(): number {
    return this.overlong ? 0 : this.partBytes;
  }

  /** The stream ended: a last line without a newline still counts. */
  end(): void {
    if (this.partBytes > 0 || this.overlong) this.endLine();
  }

  private take(piece: Buffer): void {
    if (piece.length === 0) return;
    this.partBytes += piece.length;
    if (this.overlong) {
      this.fields!.push(piece);
      return;
    }
    if (this.partBytes > this.max) {
      // Too long to keep: what was held goes through the field scanner instead, and so does the
      // rest of the line as it comes.
      this.overlong = true;
      this.fields = new TopLevelFields();
      for (const part of this.parts) this.fields.push(part);
      this.fields.push(piece);
      this.parts = [];
      return;
    }
    // Copy: the stream may reuse its chunk buffers.
    this.parts.push(Buffer.from(piece));
  }

  private endLine(): void {
    const bytes = this.partBytes;
    const line = this.overlong ? null : this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    const fields = this.fields?.finish();
    this.parts = [];
    this.partBytes = 0;
    this.overlong = false;
    this.fields = undefined;
    this.options.onLine?.(bytes);
    if (line) scanLine(line, this.options);
    else if (fields) inspectEvent(fields, bytes, this.options);
  }
}

/** Looks at one complete line. */
export function scanLine(line: Buffer, options: Pick<OutputScannerOptions, 'onResult' | 'onRateLimit' | 'rateLimitPatterns'>): void {
  let i = 0;
  while (i < line.length && (line[i] === 0x20 || line[i] === 0x09 || line[i] === 0x0d)) i++;
  if (line[i] === 0x7b /* { */) {
    let event: unknown;
    try {
      event = JSON.parse(line.toString('utf8'));
    } catch {
      event = undefined;
    }
    if (event !== undefined) {
      if (typeof event === 'object' && event !== null && !Array.isArray(event)) inspectEvent(event as Record<string, unknown>, line.length, options);
      return;
    }
  }
  const patterns = options.rateLimitPatterns ?? [];
  if (patterns.length === 0) return;
  const text = line.toString('utf8');
  for (const pattern of patterns) {
    if (pattern.regex.test(text)) {
      options.onRateLimit({ resetsAt: null, source: `pattern:${pattern.name}` });
      return;
    }
  }
}

function inspectEvent(event: Record<string, unknown>, bytes: number, options: Pick<OutputScannerOptions, 'onResult' | 'onRateLimit'>): void {
  if (event.type === 'result') {
    const result = resultOf(event, bytes);
    options.onResult(result);
    if (result.isError && result.apiErrorStatus === 429) options.onRateLimit({ resetsAt: null, source: 'result api_error_status 429' });
    return;
  }
  if (event.type === 'rate_limit_event') {
    const info = (isRecord(event.rate_limit_info) ? event.rate_limit_info : event) as Record<string, unknown>;
    if (info.status === 'rejected') options.onRateLimit({ resetsAt: timeOf(info.resetsAt ?? info.resets_at), source: 'rate_limit_event' });
  }
}

/** The result as Warden records it, from the whole event. */
export function resultOf(event: Record<string, unknown>, bytes: number): JobResult {
  const subtype = typeof event.subtype === 'string' ? event.subtype : null;
  const isError = event.is_error === true || (subtype !== null && subtype !== 'success');
  return {
    subtype,
    isError,
    durationMs: finite(event.duration_ms),
    costUsd: finite(event.total_cost_usd),
    usage: isRecord(event.usage) ? event.usage : null,
    apiErrorStatus: apiStatusOf(event, isError),
    bytes: Math.max(1, bytes),
  };
}

/** An API error status: the event's own field, or an error result whose text starts "API Error: <status>". */
function apiStatusOf(event: Record<string, unknown>, isError: boolean): number | null {
  const status = event.api_error_status;
  if (typeof status === 'number' && Number.isInteger(status)) return status;
  if (isError && typeof event.result === 'string') {
    const match = /^API Error: (\d{3})\b/.exec(event.result);
    if (match) return Number(match[1]);
  }
  return null;
}

/** A reset time as ISO: from epoch seconds (or milliseconds) or an ISO string; null if neither. */
export function timeOf(value: unknown): string | null {
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) {
    const ms = value < 1e12 ? value * 1000 : value;
    const date = new Date(ms);
    return Number.isNaN(date.getTime()) ? null : date.toISOString();
  }
  if (typeof value === 'string') {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? null : new Date(ms).toISOString();
  }
  return null;
}

function finite(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Top-level values longer than this are skipped (a result's text); the fields that matter are short. */
const FIELD_CAP = 64 * 1024;

/**
 * Streams one JSON object through, keeping its top-level keys with their values when they are
 * short (numbers, booleans, short strings, small objects like `usage`); long values are skipped
 * unread. `finish()` gives those fields, or undefined if the line was not one well-formed object.
 * Memory: at most one key and one value of up to FIELD_CAP bytes at a time.
 */
export class TopLevelFields {
  private depth = 0;
  private inString = false;
  private escaped = false;
  private started = false;
  private broken = false;
  private done = false;
  /** Reading a key (true) or a value (false) at depth 1. */
  private atKey = true;
  private key: number[] = [];
  private value: number[] = [];
  private valueTooLong = false;
  private readonly fields: Record<string, unknown> = {};

  push(chunk: Buffer): void {
    if (this.broken) return;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (this.done) {
        if (!isSpace(c)) this.broken = true;
        continue;
      }
      if (!this.started) {
        if (isSpace(c)) continue;
        if (c !== 0x7b) return void (this.broken = true);
        this.started = true;
        this.depth = 1;
        continue;
      }
      if (this.inString) {
        this.take(c);
        if (this.escaped) this.escaped = false;
        else if (c === 0x5c) this.escaped = true;
        else if (c === 0x22) this.inString = false;
        continue;
      }
      if (c === 0x22) {
        this.inString = true;
        this.take(c);
        continue;
      }
      if (this.depth === 1) {
        if (c === 0x3a /* : */ && this.atKey) {
          this.atKey = false;
          continue;
        }
        if (c === 0x2c /* , */) {
          this.store();
          continue;
        }
        if (c === 0x7d /* } */) {
          this.store();
          this.depth = 0;
          this.done = true;
          continue;
        }
        if (isSpace(c)) continue;
      }
      if (c === 0x7b || c === 0x5b) this.depth++;
      else if (c === 0x7d || c === 0x5d) this.depth--;
      if (this.depth < 1) return void (this.broken = true);
      this.take(c);
    }
  }

  finish(): Record<string, unknown> | undefined {
    return this.done && !this.broken ? this.fields : undefined;
  }

  private take(c: number): void {
    const target = this.atKey ? this.key : this.value;
    if (target.length >= FIELD_CAP) {
      if (!this.atKey) this.valueTooLong = true;
      return;
    }
    target.push(c);
  }

  private store(): void {
    if (this.key.length === 0 && this.value.length === 0 && !this.valueTooLong) return; // {} or a trailing ,
    try {
      const key = JSON.parse(Buffer.from(this.key).toString('utf8')) as unknown;
      if (typeof key !== 'string') throw new Error('key');
      if (!this.valueTooLong) this.fields[key] = JSON.parse(Buffer.from(this.value).toString('utf8')) as unknown;
    } catch {
      this.broken = true;
    }
    this.key = [];
    this.value = [];
    this.valueTooLong = false;
    this.atKey = true;
  }
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
}
