import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { initialTransition, transition, type AnyMachineSnapshot } from 'xstate';
import { dependencyProblems } from '../../src/effects/queueEffects.js';
import { heldByPause, isDrained, queueHash, queueMachine, usageGate, type QueueContext, type QueueJob } from '../../src/machines/queue.machine.js';
import { snapshotHash } from '../../src/runner/step.js';
import type { JobSpec } from '../../src/store/events/queue.events.js';

const T0 = '2026-12-01T10:00:00.000Z';
const TIMEOUTS = { maxDurationMs: 1000, postResultGraceMs: 1000, killAfterMs: 1000, idleOutputMs: 1000 };

function spec(slug: string, group: number, extra: Partial<JobSpec> = {}): JobSpec {
  return { slug, file: `/p/.warden/jobs/${slug}.md`, hash: `h-${slug}`, title: slug, group, cwd: `/w/${slug}`, command: ['agent'], timeouts: TIMEOUTS, estimateMinutes: null, promptBytes: 10, dependsOn: [], retries: null, ...extra };
}

type Ev = { type: string } & Record<string, unknown>;
type Snap = AnyMachineSnapshot & { context: QueueContext };
type Action = { type: string; params?: Record<string, unknown> };

/** A queue stepped event by event; remembers the actions of the last step. */
class Queue {
  snapshot: Snap;
  actions: Action[] = [];
  constructor() {
    const [snapshot] = initialTransition(queueMachine, {});
    this.snapshot = snapshot as Snap;
  }
  send(event: Ev): this {
    const [next, actions] = transition(queueMachine, this.snapshot as never, event as never);
    this.snapshot = next as Snap;
    this.actions = (actions as Action[]).filter((a) => !a.type.startsWith('xstate.assign'));
    return this;
  }
  get jobs(): Record<string, QueueJob> {
    return this.snapshot.context.jobs;
  }
  started(): string[] {
    return this.actions.filter((a) => a.type === 'startJob').map((a) => String(a.params?.slug));
  }
  status(slug: string) {
    return this.jobs[slug]?.status;
  }
  /** The job's start succeeded: its actor runs. */
  run(slug: string): this {
    const job = this.jobs[slug]!;
    return this.send({ type: 'queue.jobStarted', slug, actor: job.actor, jobId: job.jobId, at: T0 });
  }
  finish(slug: string, outcome = 'completed', extra: Record<string, unknown> = {}): this {
    const job = this.jobs[slug]!;
    return this.send({ type: 'queue.jobFinished', slug, actor: job.actor, outcome, reason: outcome, exitCode: 0, signal: null, killedBy: null, startedAt: T0, finishedAt: T0, costUsd: null, rateLimitResetsAt: null, at: T0, ...extra });
  }
}

const configure = (cap: number, requeueInterrupted = 1, more: Record<string, unknown> = {}): Ev => ({
  type: 'queue.configure',
  runId: 'run-1',
  cap,
  requeueInterrupted,
  rateLimitPauseMs: 60_000,
  rateLimitMarginMs: 0,
  firePolicy: 'immediate',
  utilizationThreshold: 90,
  offsetMs: 15 * 60_000,
  resumeSuppressMs: 0,
  at: T0,
  ...more,
});
const scanned = (...jobs: JobSpec[]): Ev => ({ type: 'queue.scanned', jobs, problems: [] });

describe('the queue machine', () => {
  it('starts the lowest group first, up to the cap, and only once a run is configured', () => {
    const q = new Queue().send(scanned(spec('a', 2), spec('b', 1), spec('c', 1), spec('d', 1)));
    expect(q.started()).toEqual([]);
    expect(q.send(configure(2)).started()).toEqual([]); // the run reads its job files first
    q.send(scanned(spec('a', 2), spec('b', 1), spec('c', 1), spec('d', 1)));
    expect(q.started()).toEqual(['b', 'c']);
    expect(q.actions.find((a) => a.type === 'startJob')?.params).toEqual({ slug: 'b', hash: 'h-b', run: 1, actor: 'job:b#1', jobId: 'run-1/b#1', cwd: '/w/b' });
    expect([q.status('b'), q.status('c'), q.status('d'), q.status('a')]).toEqual(['starting', 'starting', 'pending', 'pending']);
  });

  it('backfills from the active group, holds a higher group until the lower one drains', () => {
    const q = new Queue().send(configure(2)).send(scanned(spec('a', 1), spec('b', 1), spec('c', 1), spec('z', 2)));
    q.run('a').run('b');
    expect(q.finish('a').started()).toEqual(['c']);
    q.run('c');
    expect(q.finish('b').started()).toEqual([]); // c (group 1) still runs: z waits
    expect(q.finish('c').started()).toEqual(['z']);
  });

  it('starts a late arrival in a lower group at once beside the running group', () => {
    const q = new Queue().send(configure(3)).send(scanned(spec('g5-a', 5), spec('g5-b', 5)));
    q.run('g5-a').run('g5-b');
    q.send(scanned(spec('g5-a', 5), spec('g5-b', 5), spec('late', 3), spec('g5-c', 5)));
    expect(q.started()).toEqual(['late']);
    expect(q.status('g5-c')).toBe('pending');
  });

  it('never runs two of its jobs in one cwd at once', () => {
    const q = new Queue().send(configure(4)).send(scanned(spec('a', 1, { cwd: '/w/x' }), spec('b', 1, { cwd: '/w/x' }), spec('c', 1)));
    expect(q.started()).toEqual(['a', 'c']);
    q.run('a');
    expect(q.finish('a').started()).toEqual(['b']);
  });

  it('a failed job ends failed and the rest goes on', () => {
    const q = new Queue().send(configure(1)).send(scanned(spec('a', 1), spec('b', 1)));
    q.run('a');
    expect(q.finish('a', 'failed', { exitCode: 3, reason: 'exit 3' }).started()).toEqual(['b']);
    expect(q.jobs.a).toMatchObject({ status: 'failed', attempts: 1, exitCode: 3, reason: 'exit 3' });
    expect(q.actions.map((a) => a.type)).toEqual(['releaseWorker', 'startJob']);
  });

  it('an interrupted job is requeued once (configurable), then stays interrupted', () => {
    const q = new Queue().send(configure(1, 1)).send(scanned(spec('a', 1)));
    q.run('a');
    expect(q.finish('a', 'interrupted').started()).toEqual(['a']);
    expect(q.jobs.a).toMatchObject({ status: 'starting', runs: 2, actor: 'job:a#2', interruptions: 1, attempts: 0 });
    q.run('a').finish('a', 'interrupted');
    expect(q.jobs.a).toMatchObject({ status: 'interrupted', interruptions: 2 });
    expect(q.started()).toEqual([]);
  });

  it('a job interrupted before it started (no spawn logged) is requeued without using up a requeue', () => {
    const q = new Queue().send(configure(1, 1)).send(scanned(spec('a', 1)));
    q.run('a');
    // Twice in a row its run died before the job started: neither counts.
    expect(q.finish('a', 'interrupted', { startedAt: null, finishedAt: null, killedBy: 'interrupt' }).started()).toEqual(['a']);
    q.run('a').finish('a', 'interrupted', { startedAt: null, finishedAt: null, killedBy: 'interrupt' });
    expect(q.jobs.a).toMatchObject({ status: 'starting', runs: 3, interruptions: 0 });
    // Once it ran, an interruption counts as before.
    q.run('a').finish('a', 'interrupted');
    expect(q.jobs.a).toMatchObject({ status: 'starting', runs: 4, interruptions: 1 });
  });

  it('a blocked job frees its slot, is watched, and starts again when its worker is free', () => {
    const q = new Queue().send(configure(1)).send(scanned(spec('a', 1), spec('b', 1)));
    q.send({ type: 'queue.jobBlocked', slug: 'a', holder: { pid: 77, session: null, hostname: 'h', reason: 'PID 77 alive' } });
    expect(q.actions.map((a) => `${a.type}:${String(a.params?.slug)}`)).toEqual(['watchWorker:a', 'startJob:b']);
    expect(q.jobs.a).toMatchObject({ status: 'blocked', blockedBy: { pid: 77 } });
    q.run('b').finish('b');
    expect(q.started()).toEqual([]); // a is not pending yet
    expect(q.send({ type: 'queue.workerFree', slug: 'a' }).started()).toEqual(['a']);
    expect(q.jobs.a).toMatchObject({ status: 'starting', runs: 2 });
  });

  it('reconciles: edited pending → updated, removed pending → cancelled, a removed file back → pending; completed never runs again', () => {
    const q = new Queue().send(configure(1)).send(scanned(spec('a', 1), spec('b', 2), spec('c', 2)));
    q.run('a').finish('a');
    q.run('b');
    q.send(scanned(spec('a', 1, { hash: 'edited' }), spec('b', 2), spec('c', 2, { hash: 'h2', title: 'C two' })));
    expect(q.jobs.c).toMatchObject({ status: 'pending', hash: 'h2', title: 'C two' });
    expect(q.jobs.a).toMatchObject({ status: 'completed', hash: 'edited' });
    q.send(scanned(spec('a', 1), spec('b', 2)));
    expect(q.jobs.c).toMatchObject({ status: 'cancelled', removed: true });
    q.send(scanned(spec('a', 1), spec('b', 2), spec('c', 2)));
    expect(q.jobs.c).toMatchObject({ status: 'pending', removed: false });
    expect(q.started()).toEqual([]); // b still runs
  });

  it('an edited failed job runs again; a later reset extends a rate-limit pause, an earlier one does not shorten it', () => {
    const q = new Queue().send(configure(3)).send(scanned(spec('a', 1), spec('b', 1), spec('c', 1)));
    q.run('a').run('b').run('c');
    q.finish('a', 'failed');
    expect(q.send(scanned(spec('a', 1, { hash: 'fixed' }), spec('b', 1), spec('c', 1))).started()).toEqual(['a']);
    expect(q.jobs.a).toMatchObject({ status: 'starting', runs: 2, attempts: 1, hash: 'fixed' });
    q.finish('b', 'deferred', { rateLimitResetsAt: '2026-12-01T11:00:00.000Z', at: T0 });
    expect(q.snapshot.context.paused).toMatchObject({ until: '2026-12-01T11:00:00.000Z', delayMs: 3_600_000 });
    // Ten minutes on, an earlier reset: same end, the timer re-armed for what is left of it.
    q.finish('c', 'deferred', { rateLimitResetsAt: '2026-12-01T10:30:00.000Z', at: '2026-12-01T10:10:00.000Z' });
    expect(q.snapshot.context.paused).toMatchObject({ until: '2026-12-01T11:00:00.000Z', delayMs: 50 * 60_000 });
    q.run('a');
    q.finish('a', 'deferred', { rateLimitResetsAt: '2026-12-01T12:00:00.000Z', at: '2026-12-01T10:20:00.000Z' });
    expect(q.snapshot.context.paused).toMatchObject({ until: '2026-12-01T12:00:00.000Z', delayMs: 100 * 60_000 });
    expect(q.actions).toContainEqual(expect.objectContaining({ type: 'xstate.raise', params: expect.objectContaining({ delay: 100 * 60_000 }) }));
  });

  it('a job deferred by a rate limit goes back to pending and pauses the queue until the reset, then resumes by itself', () => {
    const q = new Queue().send(configure(2)).send(scanned(spec('a', 1), spec('b', 1), spec('c', 1)));
    q.run('a').run('b');
    q.finish('a', 'deferred', { rateLimitResetsAt: '2026-12-01T10:30:00.000Z', reason: 'rate limited' });
    expect(q.snapshot.value).toBe('pausedUntil');
    expect(q.jobs.a).toMatchObject({ status: 'pending', deferrals: 1, attempts: 0 });
    expect(q.actions).toContainEqual(expect.objectContaining({ type: 'xstate.raise', params: expect.objectContaining({ delay: 30 * 60_000 }) }));
    expect(q.started()).toEqual([]);
    expect(q.snapshot.context.paused).toMatchObject({ reason: 'rate_limit', until: '2026-12-01T10:30:00.000Z' });
    q.send({ type: 'xstate.after.pauseEnds.queue.pausedUntil' });
    expect(q.snapshot.value).toBe('active');
    expect(q.started()).toEqual(['a']);
  });

  it('a manual pause holds against kicks; kick bypasses an automatic pause once', () => {
    const q = new Queue().send(configure(1)).send(scanned(spec('a', 1), spec('b', 1), spec('c', 1)));
    q.run('a');
    q.send({ type: 'queue.pause', reason: 'manual', message: 'by hand', at: T0, until: null });
    expect(q.finish('a').started()).toEqual([]);
    expect(q.send({ type: 'queue.kick', at: T0 }).started()).toEqual([]);
    expect(q.send({ type: 'queue.pause', reason: 'network', message: 'meter down', at: T0, until: null }).snapshot.context.paused?.reason).toBe('manual');
    expect(q.send({ type: 'queue.resume', at: T0, message: 'by hand' }).started()).toEqual(['b']);
    q.run('b');
    q.send({ type: 'queue.pause', reason: 'auth', message: 'meter 401', at: T0, until: null });
    q.finish('b');
    expect(q.started()).toEqual([]);
    expect(q.send({ type: 'queue.kick', at: T0 }).started()).toEqual(['c']);
    expect(q.snapshot.context).toMatchObject({ kick: false, paused: { reason: 'auth' } });
  });
});

describe('dependencies and retries', () => {
  it('a chain A → B → C where A fails: B and C end blocked naming A, and the queue is drained', () => {
    const q = new Queue().send(configure(3)).send(scanned(spec('a', 1), spec('b', 1, { dependsOn: ['a'] }), spec('c', 1, { dependsOn: ['b'] })));
    expect(q.started()).toEqual(['a']);
    q.run('a').finish('a', 'failed');
    expect(q.jobs.b).toMatchObject({ status: 'blocked', blockedOn: { slug: 'a', via: 'a', status: 'failed' }, reason: 'waits for a, which failed' });
    expect(q.jobs.c).toMatchObject({ status: 'blocked', blockedOn: { slug: 'a', via: 'b' }, reason: 'waits for a, which failed (through b)' });
    expect(q.started()).toEqual([]);
    expect(isDrained(q.snapshot.context)).toBe(true);
    // The failed file fixed: A runs again, and B and C wait for it again.
    q.send(scanned(spec('a', 1, { hash: 'fixed' }), spec('b', 1, { dependsOn: ['a'] }), spec('c', 1, { dependsOn: ['b'] })));
    expect(q.started()).toEqual(['a']);
    expect([q.status('b'), q.status('c')]).toEqual(['pending', 'pending']);
    q.run('a').finish('a');
    expect(q.started()).toEqual(['b']);
  });

  it('a job waiting for a dependency in a higher group does not hold its own group', () => {
    const q = new Queue().send(configure(2)).send(scanned(spec('a', 1, { dependsOn: ['z'] }), spec('z', 2)));
    expect(q.started()).toEqual(['z']);
    q.run('z');
    expect(q.finish('z').started()).toEqual(['a']);
  });

  it('retries a failed attempt after its backoff (a logged timer), counting attempts: fail, fail, succeed = 3', () => {
    const q = new Queue().send(configure(1)).send(scanned(spec('a', 1, { retries: { max: 2, initialMs: 1_000, factor: 3, maxMs: 60_000 } }), spec('b', 2)));
    q.run('a').finish('a', 'failed', { at: T0 });
    expect(q.jobs.a).toMatchObject({ status: 'retrying', attempts: 1, retryAt: '2026-12-01T10:00:01.000Z' });
    expect(q.actions).toContainEqual(expect.objectContaining({ type: 'xstate.raise', params: expect.objectContaining({ id: 'retry:a', delay: 1_000 }) }));
    expect(q.started()).toEqual([]); // b (group 2) waits: a is not done
    expect(q.send({ type: 'queue.retryDue', slug: 'a' }).started()).toEqual(['a']);
    q.run('a').finish('a', 'failed', { at: '2026-12-01T10:00:05.000Z' });
    expect(q.jobs.a).toMatchObject({ status: 'retrying', attempts: 2, retryAt: '2026-12-01T10:00:08.000Z' });
    q.send({ type: 'queue.retryDue', slug: 'a' });
    q.run('a');
    expect(q.finish('a').started()).toEqual(['b']);
    expect(q.jobs.a).toMatchObject({ status: 'completed', attempts: 3, runs: 3 });
    // With the retries used up, a failure is final.
    const r = new Queue().send(configure(1)).send(scanned(spec('x', 1, { retries: { max: 1, initialMs: 10, factor: 2, maxMs: 100 } })));
    r.run('x').finish('x', 'failed').send({ type: 'queue.retryDue', slug: 'x' }).run('x').finish('x', 'failed');
    expect(r.jobs.x).toMatchObject({ status: 'failed', attempts: 2 });
  });

  it('reports unknown dependencies and cycles (and their dependants) as bad job files', () => {
    const problems = dependencyProblems([
      { slug: 'a', dependsOn: ['b'] },
      { slug: 'b', dependsOn: ['c'] },
      { slug: 'c', dependsOn: ['a'] },
      { slug: 'd', dependsOn: ['a'] },
      { slug: 'e', dependsOn: ['nope'] },
      { slug: 'f', dependsOn: [] },
      { slug: 'g', dependsOn: ['f'] },
    ]);
    expect(Object.fromEntries(problems)).toEqual({
      a: 'dependsOn: a cycle: a → b → c → a',
      b: 'dependsOn: a cycle: a → b → c → a',
      c: 'dependsOn: a cycle: a → b → c → a',
      d: 'dependsOn: "a" cannot run (dependsOn: a cycle: a → b → c → a)',
      e: 'dependsOn: no job "nope"',
    });
  });
});

describe('investigations', () => {
  it('a job failed for good is investigated once, outside the cap; a fix plan is not; a retry is not a failure yet', () => {
    const q = new Queue().send(configure(1, 1, { investigate: true })).send(scanned(spec('07-login', 7), spec('07-next', 7), spec('05-fix-x', 5), spec('flaky', 7, { retries: { max: 1, initialMs: 5, factor: 1, maxMs: 5 } })));
    q.run('05-fix-x').finish('05-fix-x', 'failed');
    expect(q.actions.map((a) => a.type)).toEqual(['releaseWorker', 'startJob']); // no investigation of a fix plan
    q.run('07-login');
    const failed = q.finish('07-login', 'failed');
    // The investigation and the next job start in the same step: the investigator takes no slot.
    expect(failed.actions.map((a) => a.type)).toEqual(['releaseWorker', 'investigate', 'startJob']);
    expect(failed.actions.find((a) => a.type === 'investigate')?.params).toMatchObject({ slug: '07-login', fixSlug: '07-fix-login', actor: 'investigation:07-login#1', group: 7 });
    expect(isDrained(q.snapshot.context)).toBe(false);
    q.send({ type: 'queue.investigationStarted', slug: '07-login', actor: 'investigation:07-login#1', fixFile: '/p/07-fix-login.md', at: T0 });
    q.run('07-next').finish('07-next');
    q.run('flaky').finish('flaky', 'failed');
    expect(q.actions.filter((a) => a.type === 'investigate')).toEqual([]);
    q.send({ type: 'queue.investigationFinished', slug: '07-login', actor: 'investigation:07-login#1', outcome: 'completed', reason: 'ok', fixWritten: true });
    expect(q.snapshot.context.investigations['07-login']).toMatchObject({ status: 'done', fixWritten: true });
  });
});

describe('notifications', () => {
  it('one notice per terminal state (completed, failed, blocked, cancelled, interrupted for good), none for a deferral, a retry or a requeue', () => {
    const q = new Queue().send(configure(4, 0, { notify: true })).send(
      scanned(spec('ok', 1), spec('bad', 1), spec('dep', 1, { dependsOn: ['bad'] }), spec('later', 1), spec('flaky', 1, { retries: { max: 1, initialMs: 10, factor: 1, maxMs: 10 } })),
    );
    const notices = () => q.actions.filter((a) => a.type === 'notify').map((a) => `${String(a.params?.slug)}:${String(a.params?.status)}`);
    q.run('ok').run('bad').run('flaky');
    expect(q.finish('ok').actions.find((a) => a.type === 'notify')?.params).toMatchObject({ slug: 'ok', status: 'completed', attempts: 1, runs: 1, runId: 'run-1' });
    expect(q.finish('bad', 'failed').actions.filter((a) => a.type === 'notify').map((a) => `${String(a.params?.slug)}:${String(a.params?.status)}`)).toEqual(['bad:failed', 'dep:blocked']);
    expect(q.finish('flaky', 'failed').actions.filter((a) => a.type === 'notify')).toEqual([]); // retrying
    q.send({ type: 'queue.retryDue', slug: 'flaky' }).run('flaky');
    expect(q.finish('flaky', 'deferred', { rateLimitResetsAt: null }).actions.filter((a) => a.type === 'notify')).toEqual([]);
    q.run('later').finish('later', 'interrupted');
    expect(notices()).toEqual(['later:interrupted']); // requeueInterrupted 0: interrupted for good
    q.send(scanned(spec('ok', 1), spec('bad', 1), spec('dep', 1, { dependsOn: ['bad'] }), spec('later', 1)));
    expect(notices()).toEqual(['flaky:cancelled']);
    q.send(scanned(spec('ok', 1), spec('bad', 1), spec('dep', 1, { dependsOn: ['bad'] }), spec('later', 1)));
    expect(notices()).toEqual([]); // nothing changed: nothing sent again
  });
});

describe("the queue's state hash", () => {
  it('changes with any field of any job, and not with object identity', () => {
    const q = new Queue().send(configure(2)).send(scanned(spec('a', 1), spec('b', 1), spec('c', 2)));
    const base = queueHash(q.snapshot);
    const copy = structuredClone({ value: q.snapshot.value, context: q.snapshot.context });
    expect(queueHash(copy)).toBe(base);
    for (const [field, value] of [['status', 'failed'], ['attempts', 7], ['reason', 'x'], ['cwd', '/elsewhere'], ['blockedBy', { pid: 1, session: null, hostname: null, reason: 'r' }]] as const) {
      const changed = structuredClone(copy);
      (changed.context.jobs.b as unknown as Record<string, unknown>)[field] = value;
      expect(queueHash(changed), field).not.toBe(base);
    }
    const paused = structuredClone(copy);
    paused.context.cap = 3;
    expect(queueHash(paused)).not.toBe(base);
    // It is not the plain hash (a format of its own), and a step changes it.
    expect(base).not.toBe(snapshotHash(q.snapshot));
    expect(queueHash(q.run('a').snapshot)).not.toBe(base);
  });
});

describe('fire policies and automatic pauses', () => {
  const usage = (utilization: number, at = T0, resetsAt: string | null = '2026-12-01T11:00:00.000Z'): Ev => ({ type: 'queue.usage', utilization, resetsAt, at });

  it('when-available: starts jobs only while the meter says utilization is under the threshold; kick bypasses once', () => {
    const q = new Queue().send(configure(2, 1, { firePolicy: 'when-available', utilizationThreshold: 80 })).send(scanned(spec('a', 1), spec('b', 1), spec('c', 1), spec('d', 1)));
    expect(q.started()).toEqual([]);
    expect(q.snapshot.context.gate).toMatchObject({ open: false, reason: 'when-available: waiting for the usage meter' });
    expect(q.send(usage(85)).started()).toEqual([]);
    expect(q.send(usage(40)).started()).toEqual(['a', 'b']);
    q.run('a').run('b');
    q.send(usage(80));
    expect(q.snapshot.context.gate).toMatchObject({ open: false, reason: 'when-available: utilization 80% ≥ 80%' });
    expect(q.finish('a').started()).toEqual([]);
    expect(q.send({ type: 'queue.kick', at: T0 }).started()).toEqual(['c']);
    q.run('c');
    expect(q.finish('b').started()).toEqual([]); // the kick was used up
  });

  it('on-reset: waits until offsetMinutes after the window resets (a logged timer), then fires until the threshold', () => {
    const q = new Queue().send(configure(4, 1, { firePolicy: 'on-reset', offsetMs: 15 * 60_000 })).send(scanned(spec('a', 1), spec('b', 1)));
    q.send(usage(30, T0, '2026-12-01T11:00:00.000Z'));
    expect(q.started()).toEqual([]);
    expect(q.snapshot.context.gate).toMatchObject({ open: false, opensAt: '2026-12-01T11:15:00.000Z' });
    expect(q.actions).toContainEqual(expect.objectContaining({ type: 'xstate.raise', params: expect.objectContaining({ id: 'windowReset', delay: 75 * 60_000 }) }));
    // The same window reported again does not re-arm the timer.
    q.send(usage(35, '2026-12-01T10:30:00.000Z'));
    expect(q.actions.filter((a) => a.type === 'xstate.raise')).toEqual([]);
    expect(q.send({ type: 'queue.windowReset' }).started()).toEqual(['a', 'b']);
    q.run('a').run('b');
    q.send(usage(95, '2026-12-01T12:00:00.000Z', '2026-12-01T16:15:00.000Z'));
    expect(q.snapshot.context.gate).toMatchObject({ open: false, opensAt: '2026-12-01T16:30:00.000Z' });
    expect(q.actions).toContainEqual(expect.objectContaining({ type: 'xstate.raise', params: expect.objectContaining({ delay: 4.5 * 60 * 60_000 }) }));
  });

  it('a stale reading opens nothing: after a restart past usageMaxAgeMs, and during a run once its timer fires', () => {
    const policy = { firePolicy: 'when-available', utilizationThreshold: 90, usageMaxAgeMs: 190_000 };
    const q = new Queue().send(configure(1, 1, policy)).send(scanned(spec('a', 1), spec('b', 1), spec('c', 1)));
    expect(q.send(usage(20)).started()).toEqual(['a']);
    // Each reading (re)arms its staleness timer.
    expect(q.actions).toContainEqual(expect.objectContaining({ type: 'xstate.raise', params: expect.objectContaining({ id: 'usageStale', delay: 190_000 }) }));
    q.run('a').finish('a');
    expect(q.started()).toEqual(['b']);
    // The run dies; a new one starts ten minutes later on the old 20 %: nothing starts.
    q.send({ type: 'queue.detached', reason: 'stopped', at: T0 });
    q.send(configure(1, 1, { ...policy, runId: 'run-2', at: '2026-12-01T10:10:00.000Z' }));
    q.send({ type: 'queue.jobFinished', slug: 'b', actor: q.jobs.b!.actor, outcome: 'interrupted', reason: 'its run died', exitCode: null, signal: null, killedBy: 'interrupt', startedAt: null, finishedAt: null, costUsd: null, rateLimitResetsAt: null, at: '2026-12-01T10:10:00.000Z' });
    expect(q.started()).toEqual([]);
    expect(q.send(scanned(spec('a', 1), spec('b', 1), spec('c', 1))).started()).toEqual([]);
    expect(usageGate(q.snapshot.context)).toMatchObject({ open: false, reason: expect.stringContaining('the last usage reading (2026-12-01T10:00:00.000Z) is older than 190000 ms') });
    // A fresh reading opens it again.
    expect(q.send(usage(20, '2026-12-01T10:10:05.000Z')).started()).toEqual(['b']);
    // A restart within the reading's age keeps it, with a timer for what is left of it.
    q.send(configure(1, 1, { ...policy, runId: 'run-3', at: '2026-12-01T10:11:05.000Z' }));
    expect(q.snapshot.context.usageStale).toBe(false);
    expect(q.actions).toContainEqual(expect.objectContaining({ type: 'xstate.raise', params: expect.objectContaining({ id: 'usageStale', delay: 130_000 }) }));
    // The meter stops answering: once the timer fires, nothing new starts, a kick aside.
    q.send({ type: 'queue.usageStale' });
    q.run('b');
    expect(q.finish('b').started()).toEqual([]);
    expect(q.send({ type: 'queue.kick', at: T0 }).started()).toEqual(['c']);
  });

  it('a rate limit pauses until its reset time plus the margin', () => {
    const q = new Queue().send(configure(1, 1, { rateLimitMarginMs: 60_000 })).send(scanned(spec('a', 1)));
    q.run('a').finish('a', 'deferred', { rateLimitResetsAt: '2026-12-01T10:30:00.000Z' });
    expect(q.snapshot.context.paused).toMatchObject({ reason: 'rate_limit', until: '2026-12-01T10:31:00.000Z', delayMs: 31 * 60_000 });
  });

  it('a manual resume suppresses automatic pauses for resumeSuppressMs; the cause clearing ends only its own pause', () => {
    const q = new Queue().send(configure(1, 1, { resumeSuppressMs: 10 * 60_000 })).send(scanned(spec('a', 1), spec('b', 1)));
    q.run('a');
    q.send({ type: 'queue.pause', reason: 'auth', message: 'meter 401', at: T0, until: null });
    expect(q.send({ type: 'queue.clearPause', reason: 'network', at: T0 }).snapshot.context.paused?.reason).toBe('auth');
    q.send({ type: 'queue.resume', at: T0, message: 'by hand' });
    expect(q.snapshot.context.suppressAutoUntil).toBe('2026-12-01T10:10:00.000Z');
    q.send({ type: 'queue.pause', reason: 'network', message: 'meter down', at: '2026-12-01T10:05:00.000Z', until: null });
    expect(q.snapshot.value).toBe('active');
    // A rate limit inside the while: the queue runs on; the job waits for its reset.
    expect(q.finish('a', 'deferred', { rateLimitResetsAt: '2026-12-01T11:00:00.000Z', at: '2026-12-01T10:06:00.000Z' }).started()).toEqual(['b']);
    expect(q.snapshot.value).toBe('active');
    expect(q.jobs.a).toMatchObject({ status: 'retrying', retryAt: '2026-12-01T11:00:00.000Z', deferralsInRow: 1 });
    q.send({ type: 'queue.pause', reason: 'network', message: 'meter down', at: '2026-12-01T10:11:00.000Z', until: null });
    expect(q.snapshot.value).toBe('paused');
    expect(q.send({ type: 'queue.clearPause', reason: 'network', at: '2026-12-01T10:12:00.000Z' }).snapshot.value).toBe('active');
  });
});

describe('rate limits after a manual resume, and in a row', () => {
  const limited = (at: string, resetsAt: string | null = '2026-12-01T11:00:00.000Z') => ({ rateLimitResetsAt: resetsAt, at, reason: 'rate limited (rate_limit_event)' });
  const retryArm = (q: Queue, slug: string) => q.actions.find((a) => a.type === 'xstate.raise' && a.params?.id === `retry:${slug}`)?.params;

  it('after a manual resume the job runs once; a new rate limit inside the suppression window defers it until its reset, and nothing loops', () => {
    const q = new Queue().send(configure(1, 1, { resumeSuppressMs: 10 * 60_000, rateLimitPauseMs: 15 * 60_000 })).send(scanned(spec('a', 1)));
    q.run('a').finish('a', 'deferred', limited(T0));
    expect(q.snapshot.value).toBe('pausedUntil');
    expect(q.jobs.a).toMatchObject({ status: 'pending', deferralsInRow: 1 }); // the pause holds it
    // The user resumes: the job may run once …
    expect(q.send({ type: 'queue.resume', at: '2026-12-01T10:01:00.000Z', message: 'by hand' }).started()).toEqual(['a']);
    q.run('a');
    // … and its new rate limit, inside the suppression window, defers it until the reset (or its backoff, if later): no restart.
    expect(q.finish('a', 'deferred', limited('2026-12-01T10:02:00.000Z')).started()).toEqual([]);
    expect(q.snapshot.value).toBe('active');
    expect(q.jobs.a).toMatchObject({ status: 'retrying', retryAt: '2026-12-01T11:00:00.000Z', deferralsInRow: 2, deferrals: 2 });
    expect(retryArm(q, 'a')).toMatchObject({ delay: 58 * 60_000 });
    // Kicks do not start it; its timer does.
    expect(q.send({ type: 'queue.kick', at: '2026-12-01T10:03:00.000Z' }).started()).toEqual([]);
    expect(q.send({ type: 'queue.retryDue', slug: 'a' }).started()).toEqual(['a']);
    q.run('a').finish('a', 'deferred', limited('2026-12-01T11:01:00.000Z', '2026-12-01T12:00:00.000Z'));
    expect(q.snapshot.value).toBe('pausedUntil'); // outside the window: the queue pauses again
    // A manual resume while it waits for its own reset lets it run once more.
    q.send({ type: 'queue.resume', at: '2026-12-01T11:02:00.000Z', message: 'by hand' });
    expect(q.started()).toEqual(['a']);
    expect(q.actions.map((a) => a.type)).toContain('xstate.cancel');
  });

  it('a job deferred again and again backs off exponentially and fails past rateLimitMaxDeferrals, naming the rate limit; a verdict of its own resets the count', () => {
    const q = new Queue().send(configure(2, 1, { rateLimitPauseMs: 60_000, rateLimitMaxDeferrals: 3, resumeSuppressMs: 10 * 60_000 })).send(scanned(spec('a', 1), spec('b', 1)));
    q.run('a').run('b');
    // The user resumed by hand just before: the queue is not paused; only the job waits.
    q.send({ type: 'queue.pause', reason: 'manual', message: 'by hand', at: T0, until: null }).send({ type: 'queue.resume', at: T0, message: 'by hand' });
    const waits: number[] = [];
    for (let n = 1; n <= 3; n++) {
      // A reset one second away: the backoff decides from the second deferral on.
      const at = new Date(Date.parse(T0) + n * 1_000).toISOString();
      q.finish('a', 'deferred', limited(at, new Date(Date.parse(at) + 1_000).toISOString()));
      expect(q.jobs.a).toMatchObject({ status: 'retrying', deferralsInRow: n });
      waits.push(Number(retryArm(q, 'a')?.delay));
      q.send({ type: 'queue.retryDue', slug: 'a' });
      expect(q.status('a')).toBe('starting');
      q.run('a');
    }
    expect(waits).toEqual([1_000, 2 * 60_000, 4 * 60_000]);
    q.finish('a', 'deferred', limited('2026-12-01T10:00:10.000Z'));
    expect(q.jobs.a).toMatchObject({ status: 'failed', deferralsInRow: 4, reason: 'rate limited 4 times in a row, more than rateLimitMaxDeferrals (3); last: rate limited (rate_limit_event)' });
    expect(isDrained(q.snapshot.context)).toBe(false); // b runs on
    // b: deferred twice, then completes: its count starts again.
    q.finish('b', 'deferred', limited('2026-12-01T10:00:11.000Z'));
    q.send({ type: 'queue.retryDue', slug: 'b' }).run('b');
    q.finish('b', 'deferred', limited('2026-12-01T10:00:12.000Z'));
    q.send({ type: 'queue.retryDue', slug: 'b' }).run('b');
    q.finish('b');
    expect(q.jobs.b).toMatchObject({ status: 'completed', deferralsInRow: 0, deferrals: 2 });
  });
});

describe('what ends --once: nothing runs, and a pause holds the rest', () => {
  it('a pause with nothing running holds; a running job, a due pause, or a failed attempt\'s retry does not', () => {
    const q = new Queue().send(configure(1, 1, { resumeSuppressMs: 10 * 60_000 })).send(scanned(spec('a', 1), spec('b', 1)));
    const at = '2026-12-01T10:05:00.000Z';
    expect(heldByPause(q.snapshot.context, at)).toBeNull(); // a is starting
    q.run('a');
    q.send({ type: 'queue.pause', reason: 'manual', message: 'by hand', at: T0, until: null });
    expect(heldByPause(q.snapshot.context, at)).toBeNull(); // a runs
    q.finish('a');
    expect(heldByPause(q.snapshot.context, at)).toEqual({ reason: 'manual', paused: true, message: 'by hand', until: null });
    q.send({ type: 'queue.resume', at: T0, message: 'by hand' }).run('b');
    // Rate limited inside the suppression window: only b waits, for its reset.
    q.finish('b', 'deferred', { rateLimitResetsAt: '2026-12-01T11:00:00.000Z', reason: 'rate limited', at: '2026-12-01T10:01:00.000Z' });
    expect(q.snapshot.value).toBe('active');
    expect(heldByPause(q.snapshot.context, at)).toEqual({ reason: 'rate_limit', paused: false, message: 'b: rate limited', until: '2026-12-01T11:00:00.000Z' });
    expect(heldByPause(q.snapshot.context, '2026-12-01T11:00:00.000Z')).toBeNull(); // its timer is due
    q.send({ type: 'queue.retryDue', slug: 'b' }).run('b');
    q.finish('b', 'deferred', { rateLimitResetsAt: '2026-12-01T12:00:00.000Z', reason: 'rate limited', at: '2026-12-01T11:01:00.000Z' });
    expect(q.snapshot.value).toBe('pausedUntil');
    const hold = heldByPause(q.snapshot.context, '2026-12-01T11:02:00.000Z');
    expect(hold).toMatchObject({ reason: 'rate_limit', paused: true, until: '2026-12-01T12:00:00.000Z' });
    expect(heldByPause(q.snapshot.context, '2026-12-01T12:00:00.000Z')).toBeNull();
    // A failed attempt waiting for its retry, with no pause: --once waits for it.
    const r = new Queue().send(configure(1)).send(scanned(spec('c', 1, { retries: { max: 1, initialMs: 1000, factor: 2, maxMs: 1000 } })));
    r.run('c').finish('c', 'failed');
    expect(r.status('c')).toBe('retrying');
    expect(heldByPause(r.snapshot.context, at)).toBeNull();
  });
});

describe('the batch rules, as properties', () => {
  type Step = { kind: 'finish'; pick: number; outcome: 'completed' | 'failed' } | { kind: 'arrive'; group: number } | { kind: 'block'; pick: number } | { kind: 'free'; pick: number };
  const stepArb: fc.Arbitrary<Step> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('finish' as const), pick: fc.nat(), outcome: fc.constantFrom('completed' as const, 'completed' as const, 'failed' as const) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('arrive' as const), group: fc.integer({ min: 0, max: 4 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('block' as const), pick: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('free' as const), pick: fc.nat() }) },
  );
  const queueArb = fc.record({
    cap: fc.integer({ min: 1, max: 5 }),
    groups: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 14 }),
    steps: fc.array(stepArb, { maxLength: 60 }),
  });

  /** Checks a step's starts against the state before it; returns the slugs started. */
  function checkStarts(before: Record<string, QueueJob>, q: Queue, cap: number): string[] {
    const started = q.started();
    const running = Object.values(q.jobs).filter((j) => j.status === 'starting' || j.status === 'running');
    expect(running.length).toBeLessThanOrEqual(cap);
    for (const slug of started) {
      const group = q.jobs[slug]!.group;
      // Started from pending (or new in this very scan, or freed in this very step), never twice.
      expect(['pending', 'blocked'], `${slug} started from pending`).toContain(before[slug]?.status ?? 'pending');
      // No higher group starts while a lower one runs (a late arrival is lower, so it may).
      const lowerRunning = running.filter((j) => j.group < group);
      expect(lowerRunning, `${slug} (group ${group}) started while a lower group ran`).toEqual([]);
    }
    return started;
  }

  it('never more than the cap; no higher group starts while a lower one runs; with no failures every job starts and completes', () => {
    fc.assert(
      fc.property(queueArb, ({ cap, groups, steps }) => {
        const q = new Queue().send(configure(cap));
        let specs = groups.map((g, i) => spec(`j${String(i).padStart(2, '0')}`, g));
        let before = q.jobs;
        q.send(scanned(...specs));
        const everStarted = new Set(checkStarts(before, q, cap));
        const act = (send: () => void) => {
          before = q.jobs;
          send();
          for (const slug of checkStarts(before, q, cap)) everStarted.add(slug);
        };
        const inStatus = (...statuses: string[]) => Object.values(q.jobs).filter((j) => statuses.includes(j.status)).map((j) => j.slug).sort();
        for (const step of steps) {
          if (step.kind === 'arrive') {
            specs = [...specs, spec(`late${specs.length}`, step.group)];
            act(() => q.send(scanned(...specs)));
          } else if (step.kind === 'finish') {
            const running = inStatus('starting', 'running');
            if (running.length === 0) continue;
            const slug = running[step.pick % running.length]!;
            if (q.status(slug) === 'starting') act(() => q.run(slug));
            act(() => q.finish(slug, step.outcome));
          } else if (step.kind === 'block') {
            const starting = inStatus('starting');
            if (starting.length === 0) continue;
            const slug = starting[step.pick % starting.length]!;
            act(() => q.send({ type: 'queue.jobBlocked', slug, holder: { pid: 1, session: null, hostname: null, reason: 'test' } }));
          } else {
            const blocked = inStatus('blocked');
            if (blocked.length === 0) continue;
            act(() => q.send({ type: 'queue.workerFree', slug: blocked[step.pick % blocked.length]! }));
          }
        }
        // Drain with no failures: free every blocked job, complete whatever runs.
        for (let guard = 0; guard < 1000; guard++) {
          const blocked = inStatus('blocked');
          if (blocked.length > 0) {
            act(() => q.send({ type: 'queue.workerFree', slug: blocked[0]! }));
            continue;
          }
          const running = inStatus('starting', 'running');
          if (running.length === 0) break;
          if (q.status(running[0]!) === 'starting') act(() => q.run(running[0]!));
          act(() => q.finish(running[0]!, 'completed'));
        }
        expect(inStatus('pending', 'blocked', 'starting', 'running')).toEqual([]);
        expect([...everStarted].sort()).toEqual(specs.map((s) => s.slug).sort());
        for (const job of Object.values(q.jobs)) expect(['completed', 'failed']).toContain(job.status);
      }),
      { numRuns: 300 },
    );
  });
});
