/**
 * How `warden run` shows the queue: on a terminal, a table redrawn in place (job, state,
 * elapsed, age of its last output); otherwise one line per change of a job's state, for logs.
 * Slugs, reasons and pause messages come from job files, agents and the log: both escape them.
 */
import { isRateLimitWait, type QueueContext, type QueueJob } from '../machines/queue.machine.js';
import type { SchedulerView } from '../runner/scheduler.js';
import type { LogRecord } from '../store/record.js';
import { escapeControls } from './escape.js';

export interface QueueDisplay {
  update(record: LogRecord, view: SchedulerView): void;
  close(): void;
}

/** One line per job state change (and pause changes): `HH:MM:SS slug status detail`. */
export function lineDisplay(writeRaw: (line: string) => void): QueueDisplay {
  const write = (line: string) => writeRaw(escapeControls(line));
  const last = new Map<string, string>();
  // Entries are replaced when they change: one whose object is the one seen last is unchanged.
  const seen = new Map<string, QueueJob>();
  let paused: string | null = null;
  return {
    update(record, view) {
      if (record.actor !== 'queue') return;
      const queue = view.queue();
      const time = record.ts.slice(11, 19);
      const pause = queue.paused ? `${queue.paused.reason}${queue.paused.until ? ` until ${queue.paused.until}` : ''}: ${queue.paused.message}` : null;
      if (pause !== paused) write(`${time} queue ${pause ? `paused (${pause})` : 'resumed'}`);
      paused = pause;
      for (const problem of record.type === 'queue.scanned' ? queue.problems : []) write(`${time} bad job file ${problem.file}: ${problem.problem}`);
      const data = record.data as { slug?: string; reason?: string; fixWritten?: boolean; outcome?: string };
      if (record.type === 'queue.investigationStarted') write(`${time} ${data.slug} investigating (fix plan: ${queue.investigations[data.slug!]?.fixSlug ?? '?'})`);
      if (record.type === 'queue.investigationSkipped') write(`${time} ${data.slug} not investigated: ${data.reason}`);
      if (record.type === 'queue.investigationFinished') write(`${time} ${data.slug} investigation ${data.outcome}: ${data.fixWritten ? 'fix plan written' : 'no fix plan written'}`);
      const changed: QueueJob[] = [];
      for (const job of Object.values(queue.jobs)) {
        if (seen.get(job.slug) === job) continue;
        seen.set(job.slug, job);
        changed.push(job);
      }
      for (const job of changed.sort(byGroupThenSlug)) {
        const line = `${job.status}${detail(job)}`;
        if (last.get(job.slug) === line) continue;
        last.set(job.slug, line);
        write(`${time} ${job.slug} ${line}`);
      }
    },
    close() {},
  };
}

function detail(job: QueueJob): string {
  if (job.status === 'blocked' && job.blockedBy) return ` (worker lock held by PID ${job.blockedBy.pid ?? '?'}${job.blockedBy.session ? `, session ${job.blockedBy.session}` : ''})`;
  if (job.status === 'starting' || job.status === 'running') return job.runs > 1 ? ` (run ${job.runs})` : '';
  if (job.status === 'retrying' && isRateLimitWait(job)) return ` (rate limited ${job.deferralsInRow} times in a row: ${job.reason ?? ''}; runs again at ${job.retryAt ?? '?'})`;
  if (job.status === 'retrying') return ` (attempt ${job.attempts} failed: ${job.reason ?? ''}; retry at ${job.retryAt ?? '?'})`;
  if (job.status === 'pending') return job.runs > 0 && job.reason ? ` (again: ${job.reason})` : '';
  return job.reason ? ` (${job.reason})` : '';
}

function byGroupThenSlug(a: QueueJob, b: QueueJob): number {
  return a.group - b.group || (a.slug < b.slug ? -1 : a.slug > b.slug ? 1 : 0);
}

function sorted(queue: QueueContext): QueueJob[] {
  return Object.values(queue.jobs).sort(byGroupThenSlug);
}

/** A table redrawn in place at most every `everyMs`, and on every change. */
export function tableDisplay(stream: NodeJS.WriteStream, now: () => number = Date.now, everyMs = 1_000): QueueDisplay {
  let lines = 0;
  let latest: SchedulerView | undefined;
  const lastOutput = new Map<string, string>();
  const draw = () => {
    if (!latest) return;
    const text = renderTable(latest, now(), lastOutput);
    stream.write(`${lines > 0 ? `\x1b[${lines}F\x1b[J` : ''}${text}\n`);
    lines = text.split('\n').length;
  };
  const timer = setInterval(draw, everyMs);
  timer.unref();
  return {
    update(record, view) {
      latest = view;
      if (record.type === 'job.output' || record.type === 'job.firstOutput') lastOutput.set(record.actor, record.ts);
      if (record.actor === 'queue' || record.type === 'job.firstOutput' || record.type === 'job.exited') draw();
    },
    close() {
      clearInterval(timer);
      draw();
    },
  };
}

/** The table itself: one row per job. */
export function renderTable(view: SchedulerView, nowMs: number, lastOutputAt: ReadonlyMap<string, string> = new Map()): string {
  const queue = view.queue();
  const rows: string[][] = [['JOB', 'GROUP', 'STATE', 'ELAPSED', 'LAST OUTPUT']];
  for (const job of sorted(queue)) {
    const context = job.actor ? view.job(job.actor) : undefined;
    const running = job.status === 'running' || job.status === 'starting';
    const started = context?.startedAt ?? job.startedAt;
    const elapsed = started ? ago(Date.parse(running ? new Date(nowMs).toISOString() : (job.finishedAt ?? new Date(nowMs).toISOString())) - Date.parse(started)) : '';
    const last = job.actor ? lastOutputAt.get(job.actor) : undefined;
    const lastOutput = running && last ? `${ago(nowMs - Date.parse(last))} ago` : running && started ? 'none yet' : '';
    rows.push([job.slug, String(job.group), `${job.status}${detail(job)}`, elapsed, lastOutput].map(escapeControls));
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const head = queue.paused ? `paused: ${queue.paused.reason}${queue.paused.until ? ` until ${queue.paused.until}` : ''} (${queue.paused.message})` : `running (cap ${queue.cap})`;
  return [escapeControls(head), ...rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd())].join('\n');
}

function ago(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
