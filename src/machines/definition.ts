import type { AnyMachineSnapshot, AnyStateMachine, InputFrom } from 'xstate';
import type { z } from 'zod';
import type { EffectSchemas, EventSchemas } from '../store/catalogue.js';

/**
 * A machine as the runner knows it: the statechart, the name the log calls it by, and the
 * schemas of its input and of every event it accepts. The name is part of the log format.
 * Inputs, event data, context and action params must be JSON values: the log holds them as
 * JSON, and replay feeds the machine what the log holds.
 *
 * @example
 * const demo = defineMachine({ name: 'demo', machine: demoMachine, input: demoInputSchema, events: demoEvents });
 */
export interface MachineDefinition<TMachine extends AnyStateMachine = AnyStateMachine> {
  readonly name: string;
  readonly machine: TMachine;
  readonly input: z.ZodType<InputFrom<TMachine>>;
  readonly events: EventSchemas;
  /** The params schema of custom actions, by type: the reader checks logged effects against them. */
  readonly effects?: EffectSchemas;
  /**
   * The state hash a record carries (part of the log format). Default: a hash of the stable
   * JSON of the state value and the whole context. A machine with a large context that changes
   * a little per step (the queue: one entry per job) hashes its parts and then the parts'
   * hashes, reusing the hashes of parts that did not change.
   */
  readonly hash?: (snapshot: AnyMachineSnapshot) => string;
}

export function defineMachine<TMachine extends AnyStateMachine>(
  definition: MachineDefinition<TMachine>,
): MachineDefinition<TMachine> {
  return definition;
}
