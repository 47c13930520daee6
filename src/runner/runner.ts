import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { createActor, type AnyActorLogic, type AnyActorRef, type AnyMachineSnapshot } from 'xstate';
import { MachineContractError, UsageError } from '../errors.js';
import { systemClock, type Clock } from '../effects/clock.js';
import { setLongTimeout, type LongTimeout } from '../effects/longTimer.js';
import type { MachineDefinition } from '../machines/definition.js';
import { createRecordChecker, describeIssue } from '../store/catalogue.js';
import { LogReader } from '../store/logReader.js';
import { LogWriter, type FsyncMode } from '../store/logWriter.js';
import { noRunsSeen, noteRecord, unknownRunEvidence } from '../store/runEvidence.js';
import { stateFileExists } from '../store/stateFile.js';
import type { Effect, LogRecord, StateValue } from '../store/record.js';
import { RUNNER_ACTOR, type RunnerFactType } from '../store/runnerEvents.js';
import { Mailboxes, type Delivery } from './mailboxes.js';
import { Replayer } from './replayer.js';
import { TIMER_ARM, TIMER_CANCEL, type TimerArmParams } from './step.js';
import type { PendingTimer } from './timerBook.js';

/** An event as senders write it: a type and its data fields. */
export type InputEvent = { type: string } & Record<string, unknown>;

/** What an effect handler is started with. */
export interface EffectInput<TParams = unknown> {
  /** The params of the custom action, as logged. */
  params: TParams;
  /** The actor whose step asked for this effect. */
  actor: string;
  /** Seq of the record that asked for it. */
  causeSeq: number;
  /** Report an event to the asking actor; it is validated and logged before the machine sees it. */
  send: (event: InputEvent) => void;
  /** Read the runner's clock (put time on events as data). */
  now: () => number;
}

/** Effect handlers by custom action type: XState actor logic (fromPromise, fromCallback, …). */
export type EffectHandlers = Readonly<Record<string, AnyActorLogic>>;

export interface RunnerOptions {
  /** Path of the event log; created if missing, resumed (verified) if present. */
  log: string;
  machines: readonly MachineDefinition[];
  effects?: EffectHandlers;
  clock?: Clock;
  runId?: string;
  /** Lease generation of this writer. */
  epoch?: number;
  fsync?: FsyncMode;
  batchMs?: number;
  /**
   * Fold (and verify) the existing log first, re-arming its pending timers. Default true. A
   * runner that only starts actors of its own, under new ids, may skip it and just append.
   */
  resume?: boolean;
  /**
   * Called before every write to the log; throwing stops the runner before anything is written
   * (a lease holder checks here that it still holds the lease: fencing).
   */
  fence?: () => void;
}

/**
 * Drives machines through the write-ahead log: each input is stepped with the pure
 * `transition()`, its record appended, and only then its effects run and its timers armed.
 * Opening a runner on an existing log replays and verifies it, then re-arms pending timers
 * (an overdue one fires at once).
 *
 * @example
 * const runner = Runner.open({ log: '.warden/events.jsonl', machines: [demoDefinition], effects });
 * runner.start('demo', 'demo', { maxAttempts: 3, replyTimeoutMs: 1000, retryDelayMs: 500 });
 * runner.send('demo', { type: 'demo.start' });
 */
export class Runner {
  readonly runId: string;
  readonly epoch: number;
  private readonly definitions: ReadonlyMap<string, MachineDefinition>;
  private readonly effects: EffectHandlers;
  private readonly clock: Clock;
  private readonly mailboxes = new Mailboxes();
  private readonly timerHandles = new Map<string, LongTimeout>();
  private readonly effectActors = new Set<AnyActorRef>();
  private readonly listeners = new Set<(record: LogRecord) => void>();
  private closed = false;
  private logClosed = false;
  private readonly fence: () => void;
  private haltedWith: ((reason: unknown) => void) | undefined;
  /** Settles with the reason if the runner stops on its own: a fence refused, the log failed, or abort(). */
  readonly halted: Promise<unknown>;

  private constructor(
    private readonly writer: LogWriter,
    private readonly replayer: Replayer,
    options: RunnerOptions,
    definitions: ReadonlyMap<string, MachineDefinition>,
  ) {
    this.definitions = definitions;
    this.effects = options.effects ?? {};
    this.clock = options.clock ?? systemClock;
    this.runId = options.runId ?? randomUUID();
    this.epoch = options.epoch ?? 0;
    this.fence = options.fence ?? (() => {});
    this.halted = new Promise((resolve) => {
      this.haltedWith = resolve;
    });
  }

  static open(options: RunnerOptions): Runner {
    const definitions = new Map(options.machines.map((d) => [d.name, d]));
    const replayer = new Replayer(definitions, { verify: true });
    if ((options.resume ?? true) && stateFileExists(options.log)) {
      const seen = noRunsSeen();
      for (const record of new LogReader(options.log, { check: createRecordChecker(definitions) })) {
        replayer.apply(record);
        noteRecord(record, seen);
      }
      // Files of jobs the log never started: records were lost even if no commit mark says so.
      const lost = unknownRunEvidence(options.log, seen);
      if (lost) throw new UsageError(`${options.log}: ends at seq ${replayer.lastSeq}, and ${lost}`);
    }
    const writer = LogWriter.open(options.log, { fsync: options.fsync, batchMs: options.batchMs });
    const runner = new Runner(writer, replayer, options, definitions);
    runner.appendFact('run.started', { pid: process.pid, hostname: hostname(), resumedFromSeq: replayer.lastSeq });
    if (writer.repairedTail) runner.appendFact('log.tornTail', { ...writer.repairedTail });
    for (const timer of replayer.timers.pending()) runner.armTimer(timer);
    return runner;
  }

  /** Creates an actor of a machine; its `actor.started` record holds the input and initial state. */
  start(actor: string, machine: string, input: unknown): void {
    this.assertOpen();
    const definition = this.definitions.get(machine);
    if (!definition) throw new UsageError(`no machine named "${machine}"`);
    if (actor === '' || actor === RUNNER_ACTOR) throw new UsageError(`"${actor}" cannot name an actor`);
    if (this.replayer.actors.has(actor) || this.mailboxes.has(actor)) throw new UsageError(`actor "${actor}" exists`);
    const parsed = definition.input.safeParse(input);
    if (!parsed.success) throw new UsageError(`input of ${machine}: ${describeIssue(parsed.error.issues[0])}`);
    this.deliver(actor, { type: 'actor.started', data: { machine, input: parsed.data } });
  }

  /** Delivers an event to an actor: validated against the machine's schema, logged, then stepped. */
  send(actor: string, event: InputEvent): void {
    this.assertOpen();
    const state = this.replayer.actors.get(actor);
    if (!state && !this.mailboxes.has(actor)) throw new UsageError(`no actor "${actor}"`);
    const machine = state?.machine ?? this.mailboxes.machineOf(actor);
    const definition = this.definitions.get(machine)!;
    const { type, ...data } = event;
    const schema = definition.events[type];
    if (!schema) throw new MachineContractError(machine, `does not accept event "${type}"`);
    const parsed = schema.safeParse(data);
    if (!parsed.success) throw new MachineContractError(machine, `${type}: ${describeIssue(parsed.error.issues[0])}`);
    this.deliver(actor, { type, data: parsed.data });
  }

  snapshot(actor: string): AnyMachineSnapshot | undefined {
    return this.replayer.actors.get(actor)?.snapshot;
  }

  /** Every actor the log knows (folded on resume, or started since), with its machine and status. */
  actors(): Array<{ id: string; machine: string; done: boolean }> {
    return [...this.replayer.actors.values()].map((a) => ({ id: a.id, machine: a.machine, done: a.snapshot.status === 'done' }));
  }

  state(actor: string): StateValue | undefined {
    return this.snapshot(actor)?.value as StateValue | undefined;
  }

  /** Timers armed and not yet fired or cancelled. */
  pendingTimers(): PendingTimer[] {
    return this.replayer.timers.pending();
  }

  /** Calls `listener` with every record this runner appends, after it is durable per the fsync mode. */
  subscribe(listener: (record: LogRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with the first snapshot of `actor` (now or after a later step) that satisfies `predicate`. */
  waitFor(actor: string, predicate: (snapshot: AnyMachineSnapshot) => boolean): Promise<AnyMachineSnapshot> {
    const now = this.snapshot(actor);
    if (now && predicate(now)) return Promise.resolve(now);
    return new Promise((resolve) => {
      const stop = this.subscribe((record) => {
        const snapshot = record.actor === actor ? this.snapshot(actor) : undefined;
        if (snapshot && predicate(snapshot)) {
          stop();
          resolve(snapshot);
        }
      });
    });
  }

  /** Stops timers and effects and logs `run.stopped`; pending timers stay in the log for the next resume. */
  close(reason = 'closed'): void {
    if (this.closed) return;
    this.halt();
    try {
      this.fence();
    } catch (error) {
      this.abort(error);
      return;
    }
    this.appendFact('run.stopped', { reason });
    this.writer.close();
    this.logClosed = true;
  }

  private deliver(actor: string, delivery: Delivery): void {
    this.mailboxes.post(actor, delivery);
    this.drain();
  }

  private draining = false;

  /**
   * Handles what is queued in groups: each input is stepped and its record staged, the group is
   * committed with one write (a group commit: one syscall, and one fsync in 'always' mode, for
   * the lot), and only then do the group's effects run, in record order. An effect that reports
   * back at once only queues its event for the next group.
   */
  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      for (;;) {
        const group: Step[] = [];
        try {
          for (let next = this.mailboxes.take(); next && !this.closed; next = this.mailboxes.take()) {
            const staged = this.stage(next.actor, next.delivery);
            if (staged) group.push(staged);
            if (group.length >= MAX_GROUP) break;
          }
        } finally {
          // Even when a step throws, what was staged before it is committed and its effects run.
          this.commitOrFail();
          for (const { actor, record, armed } of group) {
            if (!this.closed) this.runEffects(actor, record, armed);
            this.notify(record);
          }
        }
        if (group.length === 0) break;
      }
    } finally {
      this.draining = false;
    }
  }

  private commitOrFail(): void {
    // close() from an effect in mid-drain has already committed everything and closed the log.
    if (this.logClosed) return;
    try {
      this.fence();
      this.writer.commit();
    } catch (error) {
      // The log could not (or must not) be written: the states stepped since the last commit
      // exist only in memory, so nothing may act on them. Stop everything; a new runner
      // resumes from the log.
      this.abort(error);
      throw error;
    }
  }

  /**
   * Stops the runner where it stands, writing nothing more (not even run.stopped): timers are
   * cleared, effects stopped, the log file closed, and `halted` settles with `reason`.
   */
  abort(reason: unknown): void {
    if (!this.logClosed) {
      this.logClosed = true;
      try {
        this.writer.discard();
      } catch {
        // Already failing: the reason given is the one that matters.
      }
    }
    this.halt();
    this.haltedWith?.(reason);
  }

  /** Runs a delivery that comes from a timer or an effect: a failure halts the runner instead of escaping. */
  private guarded(deliver: () => void): void {
    try {
      deliver();
    } catch (error) {
      if (!this.closed) this.abort(error);
    }
  }

  private halt(): void {
    for (const handle of this.timerHandles.values()) handle.clear();
    this.timerHandles.clear();
    for (const effect of this.effectActors) effect.stop();
    this.effectActors.clear();
    this.closed = true;
  }

  /** Steps one input and stages its record; the new state is current from here on. */
  private stage(actor: string, delivery: Delivery): Step | undefined {
    if (delivery.type === 'timer.fired') {
      const { id, armedSeq } = delivery.data as { id: string; armedSeq: number };
      // Cancelled or re-armed between the clock firing and this turn of the mailbox.
      if (!this.replayer.timers.isPending(actor, id, armedSeq)) return undefined;
    }
    const result = this.replayer.compute({ actor, ...delivery });
    const now = this.clock.now();
    const record = this.writer.stage({
      ts: new Date(now).toISOString(),
      runId: this.runId,
      epoch: this.epoch,
      actor,
      type: delivery.type,
      data: delivery.data,
      state: result.state,
      hash: result.hash,
      effects: result.effects.map((effect) => stampDueAt(effect, now)),
    });
    return { actor, record, armed: this.replayer.commit(record, result) };
  }

  private runEffects(actor: string, record: LogRecord, armed: readonly PendingTimer[]): void {
    const effects = record.effects ?? [];
    // Cancels first, then the arms still pending after the whole record: a re-entered state
    // (cancel X, arm X) keeps its new timer, and an arm undone in the same step (arm X,
    // cancel X) never reaches the clock.
    for (const effect of effects) {
      if (effect.type === TIMER_CANCEL) this.disarm(actor, (effect.params as { id: string }).id);
    }
    for (const timer of armed) {
      if (this.replayer.timers.isPending(timer.actor, timer.id, timer.armedSeq)) this.armTimer(timer);
    }
    for (const effect of effects) {
      if (effect.type !== TIMER_CANCEL && effect.type !== TIMER_ARM) this.startEffect(actor, record.seq, effect);
    }
  }

  private startEffect(actor: string, causeSeq: number, effect: Effect): void {
    const fail = (message: string) =>
      this.guarded(() => this.deliver(actor, { type: 'effect.failed', data: { effect: effect.type, causeSeq, message } }));
    const logic = this.effects[effect.type];
    if (!logic) return fail(`no handler for effect "${effect.type}"`);
    const input: EffectInput = {
      params: effect.params,
      actor,
      causeSeq,
      send: (event) => {
        if (!this.closed) this.guarded(() => this.send(actor, event));
      },
      now: () => this.clock.now(),
    };
    const ref = createActor(logic, { input });
    this.effectActors.add(ref);
    ref.subscribe({
      error: (err) => {
        this.effectActors.delete(ref);
        if (!this.closed) fail(err instanceof Error ? err.message : String(err));
      },
      complete: () => this.effectActors.delete(ref),
    });
    ref.start();
  }

  private armTimer(timer: PendingTimer): void {
    this.disarm(timer.actor, timer.id);
    const delay = Math.max(0, timer.dueAt - this.clock.now());
    // In steps on any clock: one Node timer of 2^31 ms or more would fire after 1 ms.
    const handle = setLongTimeout(() => {
      this.timerHandles.delete(timerKey(timer.actor, timer.id));
      this.guarded(() =>
        this.deliver(timer.actor, {
          type: 'timer.fired',
          data: { id: timer.id, armedSeq: timer.armedSeq, event: timer.event },
        }),
      );
    }, delay, this.clock);
    this.timerHandles.set(timerKey(timer.actor, timer.id), handle);
  }

  private disarm(actor: string, id: string): void {
    const key = timerKey(actor, id);
    const handle = this.timerHandles.get(key);
    if (handle === undefined) return;
    handle.clear();
    this.timerHandles.delete(key);
  }

  private appendFact(type: RunnerFactType, data: object): void {
    this.fence();
    const record = this.writer.append({
      ts: new Date(this.clock.now()).toISOString(),
      runId: this.runId,
      epoch: this.epoch,
      actor: RUNNER_ACTOR,
      type,
      data,
    });
    this.replayer.commit(record, undefined);
    this.notify(record);
  }

  private notify(record: LogRecord): void {
    for (const listener of this.listeners) listener(record);
  }

  private assertOpen(): void {
    if (this.closed) throw new UsageError('the runner is closed');
  }
}

/** A stepped input whose record is staged and whose effects wait for the commit. */
interface Step {
  actor: string;
  record: LogRecord;
  armed: PendingTimer[];
}

// Bounds the records (and effects) held back by one group commit.
const MAX_GROUP = 512;

function stampDueAt(effect: Effect, now: number): Effect {
  if (effect.type !== TIMER_ARM) return effect;
  const params = effect.params as TimerArmParams;
  return { type: effect.type, params: { ...params, dueAt: now + params.delayMs } };
}

function timerKey(actor: string, id: string): string {
  return `${actor}\u0000${id}`;
}
