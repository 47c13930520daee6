/**
 * Reading an agent's output, line by line, for the few lines that matter: a result
 * (`{"type": "result", …}`, keys in any order, any size up to `maxLineBytes`) and a rate-limit
 * signal (a `rate_limit_event` whose status is `rejected`; a result that is an API 429; a line
 * matching a configured pattern — patterns see only lines that are not JSON, so an assistant
 * message that mentions a limit never counts). Memory is bounded: a line longer than
 * `maxLineBytes` is not kept (it still goes to the job's log) and is not parsed.
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
    if (this.overlong) return;
    if (this.partBytes > this.max) {
      // Too long to keep: drop what was held; the rest of this line is only counted.
      this.overlong = true;
      this.parts = [];
      return;
    }
    // Copy: the stream may reuse its chunk buffers.
    this.parts.push(Buffer.from(piece));
  }

  private endLine(): void {
    const bytes = this.partBytes;
    const line = this.overlong ? null : this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    this.parts = [];
    this.partBytes = 0;
    this.overlong = false;
    this.options.onLine?.(bytes);
    if (line) scanLine(line, this.options);
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
