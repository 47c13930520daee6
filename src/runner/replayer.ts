import type { AnyMachineSnapshot, EventObject } from 'xstate';
import { NonDeterminismError } from '../errors.js';
import type { MachineDefinition } from '../machines/definition.js';
import { isTransitionRecord, type Effect, type LogRecord } from '../store/record.js';
import { stableStringify } from '../store/stableJson.js';
import { Stepper, TIMER_ARM, type StepResult } from './step.js';
import { TimerBook, type PendingTimer } from './timerBook.js';

/** One actor as a replay leaves it. */
export interface ActorState {
  id: string;
  machine: string;
  snapshot: AnyMachineSnapshot;
  /** Seq of the last record delivered to this actor. */
  lastSeq: number;
}

export interface ReplayerOptions {
  /** Compare every recomputed step with the record; the first difference throws NonDeterminismError. */
  verify?: boolean;
}

/**
 * Folds records, in log order, through the machines that made them — no I/O, no timers.
 * With `verify`, each transition record's state value, state hash and effect list must equal
 * what the machine computes now; the first that does not is a NonDeterminismError.
 * The live runner resumes through this same class, so a resume is a verified replay.
 */
export class Replayer {
  readonly actors = new Map<string, ActorState>();
  readonly timers = new TimerBook();
  lastSeq = 0;
  private readonly verify: boolean;

  private readonly steppers = new Map<string, Stepper>();

  constructor(definitions: ReadonlyMap<string, MachineDefinition>, options: ReplayerOptions = {}) {
    for (const [name, definition] of definitions) this.steppers.set(name, new Stepper(definition));
    this.verify = options.verify ?? false;
  }

  /** Folds one record: recomputes its step (verifying it if asked) and commits it. */
  apply(record: LogRecord): void {
    if (!isTransitionRecord(record)) {
      this.lastSeq = record.seq;
      return;
    }
    const result = this.compute(record);
    if (this.verify) verifyStep(record, result);
    this.commit(record, result);
  }

  /** What the machine does with a delivery, from the current snapshot; changes nothing. */
  compute(delivery: Pick<LogRecord, 'actor' | 'type' | 'data'>): StepResult {
    if (delivery.type === 'actor.started') {
      const { machine, input } = delivery.data as { machine: string; input: unknown };
      return this.stepper(machine).initial(input);
    }
    const actor = this.actors.get(delivery.actor);
    // The reader's catalogue check guarantees actor.started came first; this guards direct callers.
    if (!actor) throw new Error(`actor "${delivery.actor}" was never started`);
    return this.stepper(actor.machine).step(actor.snapshot, machineEventOf(delivery));
  }

  /**
   * Makes a computed step current: the actor's snapshot, and the timers its record armed,
   * cancelled or fired. Returns the timers the record armed.
   */
  commit(record: LogRecord, result: StepResult | undefined): PendingTimer[] {
    this.lastSeq = record.seq;
    if (!result || !isTransitionRecord(record)) return [];
    if (record.type === 'actor.started') {
      const { machine } = record.data as { machine: string };
      this.actors.set(record.actor, { id: record.actor, machine, snapshot: result.snapshot, lastSeq: record.seq });
    } else {
      const actor = this.actors.get(record.actor)!;
      actor.snapshot = result.snapshot;
      actor.lastSeq = record.seq;
    }
    if (record.type === 'timer.fired') {
      const { id, armedSeq } = record.data as { id: string; armedSeq: number };
      this.timers.fire(record.actor, id, armedSeq);
    }
    return this.timers.applyEffects(record.actor, record.seq, record.ts, record.effects);
  }

  private stepper(machine: string): Stepper {
    const stepper = this.steppers.get(machine);
    if (!stepper) throw new Error(`no machine named "${machine}"`);
    return stepper;
  }
}

/** The event a machine receives for a transition record (or a delivery about to become one). */
export function machineEventOf(record: Pick<LogRecord, 'type' | 'data'>): EventObject {
  if (record.type === 'timer.fired') return (record.data as { event: EventObject }).event;
  const data = record.data;
  return data !== null && typeof data === 'object' ? { ...data, type: record.type } : { type: record.type };
}

function verifyStep(record: LogRecord & { state: unknown; hash: string; effects: Effect[] }, result: StepResult): void {
  if (!sameJson(record.state, result.state)) {
    throw new NonDeterminismError(record.seq, record.actor, 'state', record.state, result.state);
  }
  const logged = record.effects.some((e) => e.type === TIMER_ARM) ? record.effects.map(withoutDueAt) : record.effects;
  if (!sameJson(logged, result.effects)) {
    throw new NonDeterminismError(record.seq, record.actor, 'effects', logged, result.effects);
  }
  if (record.hash !== result.hash) {
    throw new NonDeterminismError(record.seq, record.actor, 'hash', record.hash, result.hash);
  }
}

function sameJson(a: unknown, b: unknown): boolean {
  // Most state values are plain state names: no need to serialise those.
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return stableStringify(a) === stableStringify(b);
}

// dueAt is the wall-clock time the live runner stamped on an arm; a recomputation cannot know it.
function withoutDueAt(effect: Effect): Effect {
  if (effect.type !== TIMER_ARM) return effect;
  const { dueAt: _dueAt, ...params } = effect.params as { dueAt?: number };
  return { ...effect, params };
}
