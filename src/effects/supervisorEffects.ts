/**
 * The supervisor's effects: which running jobs have been quiet too long, the probe itself (a
 * command given the job's process tree and log tail as JSON on stdin, answering a verdict as JSON
 * on stdout, bounded by a timeout that kills it with all it started), and the kills a verdict asks
 * for — a descendant only if it really is one of that job's processes.
 */
import { readFileSync } from 'node:fs';
import { fromPromise } from 'xstate';
import type { JobContext } from '../machines/job.machine.js';
import type { EffectHandlers, EffectInput } from '../runner/runner.js';
import { verdictSchema } from '../store/events/supervisor.events.js';
import { fileTail, runBounded } from './boundedCommand.js';
import { jobProcesses, listProcesses } from './processTree.js';

export interface SupervisorHost {
  /** Running jobs whose last output (or start) is older than `staleMs`, but those in `exclude`. */
  staleJobs(staleMs: number, exclude: readonly string[]): Array<{ actor: string; slug: string; jobId: string; lastOutputAt: string | null }>;
  job(actor: string): JobContext | undefined;
  /** Sends an event to a job actor, if it is still running. */
  sendToJob(actor: string, event: { type: string } & Record<string, unknown>): void;
  command: readonly string[];
}

const TAIL_BYTES = 8 * 1024;

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}

/** The job's processes as a probe sees them: pid, parent, group, state, command line. */
export function processTreeOf(context: Pick<JobContext, 'jobId' | 'pid' | 'pidStartTime'>): Array<{ pid: number; ppid: number; pgid: number; state: string; command: string }> {
  const root = context.pid === null ? null : { pid: context.pid, startTime: context.pidStartTime === null ? null : Number(context.pidStartTime) };
  const pids = new Set(jobProcesses(context.jobId, root));
  return listProcesses()
    .filter((p) => pids.has(p.pid))
    .map((p) => ({ pid: p.pid, ppid: p.ppid, pgid: p.pgid, state: p.state, command: commandLine(p.pid) }));
}

export function supervisorEffects(host: SupervisorHost): EffectHandlers {
  return {
    findStale: fromPromise(async ({ input }: { input: EffectInput<{ staleMs: number; exclude: string[] }> }) => {
      const jobs = host.staleJobs(input.params.staleMs, input.params.exclude);
      if (jobs.length > 0) input.send({ type: 'supervisor.stale', jobs });
    }),

    runProbe: fromPromise(async ({ input }: { input: EffectInput<{ actor: string; slug: string; jobId: string; timeoutMs: number }> }) => {
      const { actor, slug, jobId, timeoutMs } = input.params;
      const started = input.now();
      const context = host.job(actor);
      const request = {
        job: { slug, jobId, pid: context?.pid ?? null, startedAt: context?.startedAt ?? null, cwd: context?.cwd ?? null, log: context?.outputLog ?? null },
        processTree: context ? processTreeOf(context) : [],
        logTail: context ? fileTail(context.outputLog, TAIL_BYTES) : '',
      };
      const result = await runBounded(host.command, { kind: 'probe', input: JSON.stringify(request), timeoutMs });
      const fail = (reason: string) => input.send({ type: 'supervisor.probeFailed', actor, slug, reason });
      if (!result.ok) return fail(result.timedOut ? `the probe did not answer within ${timeoutMs} ms; killed` : `the probe ${result.reason}`);
      let answer: unknown;
      try {
        answer = JSON.parse(result.stdout);
      } catch {
        return fail(`the probe's answer is not JSON: ${JSON.stringify(result.stdout.slice(0, 80))}`);
      }
      const verdict = verdictSchema.safeParse(answer);
      if (!verdict.success) return fail(`the probe's answer is not a verdict: ${verdict.error.issues[0]?.path.join('.') || '(root)'}: ${verdict.error.issues[0]?.message}`);
      input.send({ type: 'supervisor.answered', actor, slug, jobId, verdict: verdict.data, tookMs: Math.max(0, Math.round(input.now() - started)) });
    }),

    killDescendant: fromPromise(async ({ input }: { input: EffectInput<{ actor: string; slug: string; jobId: string; targetPid: number | null; reason: string }> }) => {
      const { actor, slug, targetPid } = input.params;
      const context = host.job(actor);
      const refuse = (reason: string) => input.send({ type: 'supervisor.refused', actor, slug, targetPid, reason });
      if (targetPid === null) return refuse('kill-descendant names no targetPid');
      if (!context) return refuse('the job is not running');
      const tree = processTreeOf(context);
      if (targetPid === context.pid) return refuse(`PID ${targetPid} is the job's own process, not a descendant (kill-job stops the job)`);
      if (!tree.some((p) => p.pid === targetPid)) return refuse(`PID ${targetPid} is not a process of job ${slug}`);
      // The target and what it started, deepest first.
      const children = new Map<number, number[]>();
      for (const p of tree) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
      const doomed: number[] = [];
      const walk = (pid: number) => {
        for (const child of children.get(pid) ?? []) walk(child);
        doomed.push(pid);
      };
      walk(targetPid);
      for (const pid of doomed) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      input.send({ type: 'supervisor.killed', actor, slug, targetPid, descendants: doomed.filter((pid) => pid !== targetPid) });
    }),

    cancelJob: fromPromise(async ({ input }: { input: EffectInput<{ actor: string; reason: string }> }) => {
      host.sendToJob(input.params.actor, { type: 'job.cancel', reason: input.params.reason });
    }),
  };
}
