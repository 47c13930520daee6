import { describe, expect, it } from 'vitest';
import { LineScanner, timeOf, type RateLimitSignal } from '../../src/effects/agentOutput.js';
import type { JobResult } from '../../src/store/events/job.events.js';

function scanner(maxLineBytes?: number) {
  const results: JobResult[] = [];
  const limits: RateLimitSignal[] = [];
  const lines: number[] = [];
  const s = new LineScanner({
    maxLineBytes,
    rateLimitPatterns: [{ name: '429', regex: /\b429 Too Many Requests\b/ }],
    onResult: (r) => results.push(r),
    onRateLimit: (l) => limits.push(l),
    onLine: (b) => lines.push(b),
  });
  return { s, results, limits, lines };
}
const line = (value: unknown) => Buffer.from(`${JSON.stringify(value)}\n`);

describe('LineScanner', () => {
  it('finds results with keys in any order, split across chunks anywhere, with CRLF and leading spaces', () => {
    const { s, results } = scanner();
    const text = `{"usage":{"input_tokens":5},"total_cost_usd":0.5,"is_error":false,"subtype":"success","type":"result","duration_ms":9}\r\n  {"type":"result","subtype":"error_max_turns","is_error":true}\n`;
    const bytes = Buffer.from(text);
    for (let i = 0; i < bytes.length; i += 7) s.push(bytes.subarray(i, i + 7));
    expect(results).toEqual([
      { subtype: 'success', isError: false, durationMs: 9, costUsd: 0.5, usage: { input_tokens: 5 }, apiErrorStatus: null, bytes: text.indexOf('\n') },
      { subtype: 'error_max_turns', isError: true, durationMs: null, costUsd: null, usage: null, apiErrorStatus: null, bytes: text.length - text.indexOf('\n') - 2 },
    ]);
  });

  it('judges success from the whole event: is_error, or a subtype other than success', () => {
    const { s, results } = scanner();
    s.push(line({ type: 'result', subtype: 'success', is_error: true }));
    s.push(line({ type: 'result', subtype: 'error_during_execution' }));
    s.push(line({ type: 'result' }));
    expect(results.map((r) => r.isError)).toEqual([true, true, false]);
  });

  it('rate limits: a rejected rate_limit_event (with its reset), an API 429 result, a pattern on a non-JSON line; never a mention', () => {
    const { s, limits } = scanner();
    s.push(line({ type: 'rate_limit_event', rate_limit_info: { status: 'allowed_warning', resetsAt: 1_800_000_000 } }));
    s.push(line({ type: 'rate_limit_event', rate_limit_info: { status: 'rejected', resetsAt: 1_800_000_000 } }));
    s.push(line({ type: 'result', is_error: true, result: 'API Error: 429 {"error":"rate_limit_error"}' }));
    s.push(line({ type: 'assistant', message: { content: [{ type: 'text', text: "You've hit your limit; 429 Too Many Requests" }] } }));
    s.push(Buffer.from('HTTP 429 Too Many Requests\n'));
    expect(limits).toEqual([
      { resetsAt: '2027-01-15T08:00:00.000Z', source: 'rate_limit_event' },
      { resetsAt: null, source: 'result api_error_status 429' },
      { resetsAt: null, source: 'pattern:429' },
    ]);
  });

  it('keeps memory bounded on a 50 MB line without a newline, and reads on after it', () => {
    const { s, results, lines } = scanner(1024 * 1024);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let maxHeld = 0;
    for (let sent = 0; sent < 50 * 1024 * 1024; sent += chunk.length) {
      s.push(chunk);
      maxHeld = Math.max(maxHeld, s.heldBytes);
    }
    expect(maxHeld).toBeLessThanOrEqual(1024 * 1024);
    s.push(Buffer.from('\n'));
    s.push(line({ type: 'result', subtype: 'success' }));
    expect(lines[0]).toBe(50 * 1024 * 1024);
    expect(results).toHaveLength(1);
  });

  it('finds a result of any length: a 50 MB result line is streamed, not kept, and its fields are read', () => {
    const { s, results } = scanner(1024 * 1024);
    const head = Buffer.from('{"usage":{"input_tokens":7,"nested":{"a":[1,2,{"b":"}]"}]}},"result":"');
    const tail = Buffer.from('","subtype":"success","is_error":false,"total_cost_usd":1.25,"type":"result","duration_ms":42}\n');
    const chunk = Buffer.alloc(256 * 1024, 0x62); // "bbbb…", with an escaped quote now and then
    chunk.write('\\"', 1000);
    let maxHeld = 0;
    s.push(head);
    for (let sent = 0; sent < 50 * 1024 * 1024; sent += chunk.length) {
      s.push(chunk);
      maxHeld = Math.max(maxHeld, s.heldBytes);
    }
    s.push(tail);
    expect(maxHeld).toBeLessThanOrEqual(1024 * 1024);
    expect(results).toEqual([
      { subtype: 'success', isError: false, durationMs: 42, costUsd: 1.25, usage: { input_tokens: 7, nested: { a: [1, 2, { b: '}]' }] } }, apiErrorStatus: null, bytes: head.length + 50 * 1024 * 1024 + tail.length - 1 },
    ]);
  });

  it('an overlong line that is not one well-formed object is no result', () => {
    const { s, results } = scanner(64);
    const pad = 'x'.repeat(200);
    for (const text of [
      `{"type":"result","text":"${pad}"} trailing`,
      `{"type":"result","text":"${pad}"`,
      `[{"type":"result","text":"${pad}"}]`,
      `{"type":"result","text":${pad}}`,
      `{"type":"result" "text":"${pad}"}`,
      `not json ${pad}`,
    ]) s.push(Buffer.from(`${text}\n`));
    expect(results).toEqual([]);
    s.push(Buffer.from(`{"type":"result","text":"${pad}"}\n`));
    expect(results).toHaveLength(1);
  });

  it('a last line without a newline still counts when the stream ends', () => {
    const { s, results } = scanner();
    s.push(Buffer.from('{"type":"result","subtype":"success"}'));
    expect(results).toHaveLength(0);
    s.end();
    expect(results).toHaveLength(1);
  });
});

describe('timeOf', () => {
  it('reads epoch seconds, epoch milliseconds and ISO strings; anything else is null', () => {
    expect(timeOf(1_800_000_000)).toBe('2027-01-15T08:00:00.000Z');
    expect(timeOf(1_800_000_000_000)).toBe('2027-01-15T08:00:00.000Z');
    expect(timeOf('2027-01-15T09:00:00+01:00')).toBe('2027-01-15T08:00:00.000Z');
    expect([timeOf('soon'), timeOf(-1), timeOf(null), timeOf(Number.NaN)]).toEqual([null, null, null, null]);
  });
});
