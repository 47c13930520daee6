/**
 * The queue as the log tells it: folded from `.warden/events.jsonl` with no scheduler needed
 * (one may be writing it meanwhile: a torn last line is skipped). What `warden status` prints.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LeaseOps, type LeaseStatus } from '../effects/leaseOps.js';
import { builtInMachines } from '../machines/catalogue.js';
import { isRateLimitWait, usageGate, type QueueContext, type QueueJobStatus, type QueuePause, type UsageGate } from '../machines/queue.machine.js';
import type { PollContext } from '../machines/poll.machine.js';
import { markPathOf } from '../store/commitMark.js';
import { stateFileExists } from '../store/stateFile.js';
import { replayLog, type LogDamage } from './replay.js';

export interface JobStatus {
  slug: string;
  title: string;
  status: QueueJobStatus;
  group: number;
  attempts: number;
  runs: number;
  interruptions: number;
  deferrals: number;
  exitCode: number | null;
  killedBy: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  costUsd: number | null;
  reason: string | null;
  blockedBy: QueueContext['jobs'][string]['blockedBy'];
  dependsOn: string[];
  /** What a job that has not started waits for, in words: dependencies, a retry's backoff, a worker lock, the gate, a pause. */
  waitsFor: string | null;
  /** Its latest investigation, if it failed and was investigated. */
  investigation: QueueContext['investigations'][string] | null;
  /** The job actor of its latest run (`warden log` and `replay --at` show it). */
  actor: string | null;
  removed: boolean;
}

export interface MeterStatus {
  state: string;
  lastPoll: PollContext['lastPoll'];
  utilization: number | null;
  resetsAt: string | null;
  /** Failures in a row, and the kind of the last one. */
  failures: number;
  failureKind: string | null;
  failingSince: string | null;
  nextPollAt: string | null;
  /** The pause the meter asked for (auth, network), if any. */
  pausedAs: string | null;
}

export interface QueueStatus {
  lease: LeaseStatus | { held: false; live: false; owner: null; basis: string };
  /** The run driving the queue, if the log says one does. */
  runId: string | null;
  cap: number | null;
  paused: QueuePause | null;
  /** Whether the fire policy lets new jobs start now, and why. */
  gate: (UsageGate & { firePolicy: string }) | null;
  /** The usage meter's poll loop, if a meter is configured. */
  meter: MeterStatus | null;
  jobs: JobStatus[];
  problems: Array<{ file: string; problem: string }>;
  /** The log's last seq read. */
  seq: number;
  /** Where the log is damaged, if it is: everything above is as of the last good record before it. */
  damage: LogDamage | null;
}

/** The status of a project dir's queue, from its lease file and log alone. */
export function queueStatus(projectDir: string): QueueStatus {
  const dir = resolve(projectDir);
  const wardenDir = join(dir, '.warden');
  const lease = existsSync(wardenDir) ? new LeaseOps(wardenDir, 'status').status() : { held: false as const, live: false as const, owner: null, basis: 'no .warden directory' };
  const log = join(wardenDir, 'events.jsonl');
  const empty = { lease, runId: null, cap: null, paused: null, gate: null, meter: null, jobs: [], problems: [] };
  if (!stateFileExists(log)) {
    // A log gone while its commit mark stays was removed or moved: that is damage, not a new project.
    const damage = stateFileExists(markPathOf(log)) ? { file: log, line: 1, reason: `missing, but ${markPathOf(log)} says records were committed; restore it, or remove the mark to start a new log`, lastGoodSeq: 0 } : null;
    return { ...empty, seq: 0, damage };
  }
  // Damage does not hide the queue: it is shown as of the last good record, under a banner.
  const replayed = replayLog(log, builtInMachines, { onDamage: 'stop' });
  const damage = replayed.damage ?? null;
  const queue = replayed.actors.find((a) => a.id === 'queue')?.snapshot.context as QueueContext | undefined;
  const poll = replayed.actors.find((a) => a.id === 'poll')?.snapshot;
  const meter: MeterStatus | null = poll
    ? (() => {
        const c = poll.context as PollContext;
        return {
          state: String(poll.value),
          lastPoll: c.lastPoll,
          utilization: c.lastOk?.utilization ?? null,
          resetsAt: c.lastOk?.resetsAt ?? null,
          failures: c.failures,
          failureKind: c.failures > 0 ? (c.lastPoll?.kind ?? null) : null,
          failingSince: c.streakSince,
          nextPollAt: poll.value === 'stopped' ? null : c.nextPollAt,
          pausedAs: c.pausedAs,
        };
      })()
    : null;
  if (!queue) return { ...empty, meter, seq: replayed.lastSeq, damage };
  const now = new Date().toISOString();
  const jobs = Object.values(queue.jobs)
    .sort((a, b) => a.group - b.group || (a.slug < b.slug ? -1 : 1))
    .map((j) => ({
      slug: j.slug,
      title: j.title,
      status: j.status,
      group: j.group,
      attempts: j.attempts,
      runs: j.runs,
      interruptions: j.interruptions,
      deferrals: j.deferrals,
      exitCode: j.exitCode,
      killedBy: j.killedBy,
      startedAt: j.startedAt,
      finishedAt: j.finishedAt,
      costUsd: j.costUsd,
      reason: j.reason,
      blockedBy: j.blockedBy,
      dependsOn: j.dependsOn,
      waitsFor: waitsFor(j, queue),
      investigation: queue.investigations?.[j.slug] ?? null,
      actor: j.actor,
      removed: j.removed,
    }));
  return { lease, runId: queue.runId, cap: queue.cap, paused: queue.paused, gate: { ...usageGate(queue, now), firePolicy: queue.firePolicy }, meter, jobs, problems: queue.problems, seq: replayed.lastSeq, damage };
}

function waitsFor(job: QueueContext['jobs'][string], queue: QueueContext): string | null {
  switch (job.status) {
    case 'retrying':
      if (isRateLimitWait(job)) return `its rate limit: waits until ${job.retryAt} (deferred ${job.deferralsInRow} times in a row)`;
      return `retry ${job.attempts + 1} at ${job.retryAt}`;
    case 'blocked':
      if (job.blockedOn) return `nothing: ${job.reason}`;
      return job.blockedBy ? `the worker lock of ${job.cwd}, held by PID ${job.blockedBy.pid ?? '?'} (${job.blockedBy.reason})` : 'a worker lock';
    case 'pending': {
      const open = job.dependsOn.filter((slug) => queue.jobs[slug]?.status !== 'completed');
      if (open.length > 0) return `dependsOn: ${open.join(', ')}`;
      if (queue.paused) return `the queue to resume (paused: ${queue.paused.reason})`;
      const gate = usageGate(queue, new Date().toISOString());
      if (!gate.open) return `the usage gate (${gate.reason})`;
      return queue.runId ? 'a free slot (or its group)' : 'a scheduler run';
    }
    default:
      return null;
  }
}
