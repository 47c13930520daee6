import { createActor, type AnyActorScope, type AnyMachineSnapshot, type EventObject } from 'xstate';
import { MachineContractError } from '../errors.js';
import type { MachineDefinition } from '../machines/definition.js';
import type { Effect, StateValue } from '../store/record.js';
import { stableHash } from '../store/stableJson.js';

/**
 * One pure step of a machine, shared by the live runner and by replay so the two cannot drift:
 * xstate computes the next snapshot and the actions, and this module turns the actions into
 * the effect list a record carries.
 */
export interface StepResult {
  snapshot: AnyMachineSnapshot;
  state: StateValue;
  hash: string;
  effects: Effect[];
}

/** The effect a delayed raise (an `after` or a `raise(…, { delay })`) becomes. */
export interface TimerArmParams {
  id: string;
  event: EventObject;
  delayMs: number;
  /** Absolute due time (epoch ms); stamped by the live runner, absent from recomputed effects. */
  dueAt?: number;
}

export const TIMER_ARM = 'timer.arm';
export const TIMER_CANCEL = 'timer.cancel';

/**
 * Steps one machine. Equivalent to xstate's `initialTransition()` / `transition()`, which build a
 * throwaway actor (and two actor systems) on every call; this builds one inert actor scope per
 * machine and reuses it, which is what makes replay fast. Reuse is safe because Warden's
 * machines cannot spawn or invoke (those actions are refused below), so nothing registers in
 * the scope's system; test/runner/step.test.ts checks the results equal xstate's own functions.
 */
export class Stepper {
  private readonly scope: AnyActorScope;
  private actions: Array<{ type: string; params?: unknown }> = [];

  constructor(readonly definition: MachineDefinition) {
    const self = createActor(definition.machine);
    this.scope = {
      self,
      id: '',
      sessionId: '',
      system: self.system,
      logger: () => {},
      defer: () => {},
      emit: () => {},
      stopChild: () => {},
      actionExecutor: (action) => void this.actions.push(action),
    };
  }

  initial(input: unknown): StepResult {
    this.actions = [];
    const snapshot = this.definition.machine.getInitialSnapshot(this.scope, input);
    return result(this.definition, snapshot, this.actions);
  }

  step(snapshot: AnyMachineSnapshot, event: EventObject): StepResult {
    this.actions = [];
    const next = this.definition.machine.transition(snapshot, event, this.scope);
    return result(this.definition, next, this.actions);
  }
}

/** The hash a record carries: stable JSON of the state value and the context. */
export function snapshotHash(snapshot: AnyMachineSnapshot): string {
  return stableHash({ value: snapshot.value, context: snapshot.context });
}

function result(
  definition: MachineDefinition,
  snapshot: AnyMachineSnapshot,
  actions: ReadonlyArray<{ type: string; params?: unknown }>,
): StepResult {
  if (snapshot.status === 'error') {
    throw new MachineContractError(definition.name, `step failed: ${String(snapshot.error)}`);
  }
  return {
    snapshot,
    state: snapshot.value as StateValue,
    hash: definition.hash ? definition.hash(snapshot) : snapshotHash(snapshot),
    effects: describeActions(definition.name, actions),
  };
}

function describeActions(machine: string, actions: ReadonlyArray<{ type: string; params?: unknown }>): Effect[] {
  const effects: Effect[] = [];
  for (const action of actions) {
    const params = action.params as Record<string, unknown> | undefined;
    switch (action.type) {
      case 'xstate.raise': {
        // A raise without a delay was already applied inside the step.
        if (typeof params?.delay !== 'number') break;
        const event = params.event as EventObject;
        const id = typeof params.id === 'string' ? params.id : event.type;
        const armed: TimerArmParams = { id, event, delayMs: params.delay };
        effects.push({ type: TIMER_ARM, params: armed });
        break;
      }
      case 'xstate.cancel':
        effects.push({ type: TIMER_CANCEL, params: { id: String(params?.sendId) } });
        break;
      default:
        if (action.type.startsWith('xstate.')) {
          throw new MachineContractError(
            machine,
            `uses ${action.type}; machines declare custom actions and the runner turns them into effects`,
          );
        }
        effects.push(params === undefined ? { type: action.type } : { type: action.type, params });
    }
  }
  return effects;
}
