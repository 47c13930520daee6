import { initialTransition, transition, type AnyMachineSnapshot, type EventObject } from 'xstate';
import { MachineContractError } from '../errors.js';
import type { MachineDefinition } from '../machines/definition.js';
import type { Effect, StateValue } from '../store/record.js';
import { stableHash } from '../store/stableJson.js';

/**
 * One pure step of a machine, shared by the live runner and by replay so the two cannot drift:
 * xstate's `transition()` computes the next snapshot and the actions, and this module turns
 * the actions into the effect list a record carries.
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

export function initialStep(definition: MachineDefinition, input: unknown): StepResult {
  const [snapshot, actions] = initialTransition(definition.machine, input);
  return result(definition, snapshot, actions);
}

export function step(definition: MachineDefinition, snapshot: AnyMachineSnapshot, event: EventObject): StepResult {
  const [next, actions] = transition(definition.machine, snapshot, event);
  return result(definition, next, actions);
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
    hash: snapshotHash(snapshot),
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
