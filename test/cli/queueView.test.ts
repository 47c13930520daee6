import { describe, expect, it } from 'vitest';
import { lineDisplay, renderTable, tableDisplay } from '../../src/cli/queueView.js';
import { initialTransition } from 'xstate';
import { queueMachine, type QueueContext, type QueueJob } from '../../src/machines/queue.machine.js';
import type { SchedulerView } from '../../src/runner/scheduler.js';
import type { LogRecord } from '../../src/store/record.js';

const T0 = Date.parse('2026-12-01T10:00:00.000Z');
const iso = (ms: number) => new Date(T0 + ms).toISOString();

function job(slug: string, group: number, changes: Partial<QueueJob> = {}): QueueJob {
  return { slug, title: slug, file: `${slug}.md`, hash: 'h', group, cwd: `/w/${slug}`, status: 'pending', runs: 0, attempts: 0, interruptions: 0, deferrals: 0, deferralsInRow: 0, actor: null, jobId: null, blockedBy: null, dependsOn: [], blockedOn: null, retries: null, retryAt: null, removed: false, editedSpec: null, reason: null, exitCode: null, signal: null, killedBy: null, startedAt: null, finishedAt: null, costUsd: null, ...changes };
}
function viewOf(jobs: QueueJob[], paused: QueueContext['paused'] = null): SchedulerView {
  const initial = initialTransition(queueMachine, {})[0].context as QueueContext;
  const queue: QueueContext = { ...initial, runId: 'r', cap: 2, jobs: Object.fromEntries(jobs.map((j) => [j.slug, j])), paused };
  return { queue: () => queue, job: (actor) => (actor === 'job:b#1' ? ({ startedAt: iso(0) } as never) : undefined), runId: 'r', epoch: 1 };
}
const record = (type: string, actor = 'queue', ms = 0): LogRecord => ({ seq: 1, ts: iso(ms), runId: 'r', epoch: 1, actor, type, data: {} }) as LogRecord;

describe('the queue display', () => {
  it('renders one row per job, lowest group first, with elapsed time and the age of the last output', () => {
    const view = viewOf([job('c', 3), job('b', 1, { status: 'running', actor: 'job:b#1', runs: 1 }), job('a', 1, { status: 'completed', startedAt: iso(0), finishedAt: iso(95_000), reason: 'result: success, exit 0' })]);
    const text = renderTable(view, T0 + 125_000, new Map([['job:b#1', iso(120_000)]]));
    expect(text.split('\n')).toEqual([
      'running (cap 2)',
      'JOB  GROUP  STATE                                ELAPSED  LAST OUTPUT',
      'a    1      completed (result: success, exit 0)  1m35s',
      'b    1      running                              2m05s    5s ago',
      'c    3      pending',
    ]);
  });

  it('on a terminal, redraws the table in place', () => {
    const written: string[] = [];
    const stream = { write: (text: string) => written.push(text) } as unknown as NodeJS.WriteStream;
    const display = tableDisplay(stream, () => T0, 60_000);
    display.update(record('queue.scanned'), viewOf([job('a', 1)]));
    display.update(record('queue.jobStarted'), viewOf([job('a', 1, { status: 'running' })]));
    display.close();
    expect(written[0]).not.toContain('\x1b[');
    // Each redraw moves up over the lines drawn before and clears them.
    expect(written[1]!.startsWith('\x1b[3F\x1b[J')).toBe(true);
    expect(written[1]).toContain('a    1      running');
  });

  it('without a terminal, prints a line per change of a job and of the pause', () => {
    const lines: string[] = [];
    const display = lineDisplay((line) => lines.push(line));
    display.update(record('queue.scanned'), viewOf([job('a', 1), job('b', 2)]));
    display.update(record('job.output', 'job:a#1'), viewOf([job('a', 1, { status: 'running' })]));
    display.update(record('queue.jobStarted', 'queue', 1000), viewOf([job('a', 1, { status: 'running' }), job('b', 2)]));
    display.update(record('queue.pause', 'queue', 2000), viewOf([job('a', 1, { status: 'running' }), job('b', 2)], { reason: 'manual', message: 'by hand', since: iso(2000), until: null, delayMs: 0 }));
    expect(lines).toEqual(['10:00:00 a pending', '10:00:00 b pending', '10:00:01 a running', '10:00:02 queue paused (manual: by hand)']);
  });

  // What a job file, an agent or a hand-edited log can put in a slug, a reason or a pause message.
  const HOSTILE = 'x\n10:00:09 forged completed\r\u001b[32mgreen\u0007\u009b2J\u202Eevil';
  const SHOWN = 'x\\n10:00:09 forged completed\\r\\u001b[32mgreen\\u0007\\u009b2J\\u202eevil';
  const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/;

  it('the line display escapes control characters in reasons, pause messages and bad-file problems', () => {
    const lines: string[] = [];
    const display = lineDisplay((line) => lines.push(line));
    const view = viewOf([job('a', 1, { status: 'failed', reason: HOSTILE })], { reason: 'manual', message: HOSTILE, since: iso(0), until: null, delayMs: 0 });
    view.queue().problems.push({ file: `/j/${HOSTILE}.md`, problem: HOSTILE });
    display.update(record('queue.scanned'), view);
    expect(lines).toEqual([`10:00:00 queue paused (manual: ${SHOWN})`, `10:00:00 bad job file /j/${SHOWN}.md: ${SHOWN}`, `10:00:00 a failed (${SHOWN})`]);
  });

  it('the table escapes them too, before measuring its columns', () => {
    const view = viewOf([job('a', 1, { status: 'failed', reason: HOSTILE }), job('b', 2)], { reason: 'manual', message: HOSTILE, since: iso(0), until: null, delayMs: 0 });
    const text = renderTable(view, T0);
    expect(text).not.toMatch(RAW_CONTROL);
    const lines = text.split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toBe(`paused: manual (${SHOWN})`);
    expect(lines[2]).toBe(`a    1      failed (${SHOWN})`);
    expect(lines[3]).toBe('b    2      pending');
  });
});
