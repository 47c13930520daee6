import { z } from 'zod';
import { actorInputSchemas, runnerFactSchemas, RUNNER_ACTOR, timerEventSchema } from './runnerEvents.js';
import { isTransitionRecord, type Effect, type LogRecord } from './record.js';

/** The data schema of each event type a machine accepts, keyed by event type. */
export type EventSchemas = Readonly<Record<string, z.ZodType>>;

/** The params schema of each custom action (effect) a machine asks for, keyed by action type. */
export type EffectSchemas = Readonly<Record<string, z.ZodType>>;

/**
 * What the log needs to know of a machine: the schema of its input, of each event it accepts,
 * and (optionally) of the params of the effects it asks for.
 */
export interface MachineSchemas {
  readonly input: z.ZodType;
  readonly events: EventSchemas;
  readonly effects?: EffectSchemas;
}

/** The runner's own effects: timers armed and cancelled. Their params are the runner's to read on resume. */
export const timerEffectSchemas: EffectSchemas = {
  'timer.arm': z.strictObject({
    id: z.string().min(1),
    event: timerEventSchema,
    delayMs: z.number().int().nonnegative(),
    dueAt: z.number().nonnegative().optional(),
  }),
  'timer.cancel': z.strictObject({ id: z.string().min(1) }),
};

/** Every machine a log may name, by machine name. */
export type Catalogue = ReadonlyMap<string, MachineSchemas>;

/**
 * Checks records in log order against the catalogue: the type is known for the actor's machine
 * and the data fits its schema. Stateful, because an actor's machine is named once, by the
 * `actor.started` record that created it. Returns the reason a record is invalid, or undefined.
 */
export function createRecordChecker(catalogue: Catalogue): (record: LogRecord) => string | undefined {
  const machineOf = new Map<string, string>();
  return (record) => {
    if (record.actor === RUNNER_ACTOR) {
      if (isTransitionRecord(record)) return `runner records carry no state`;
      const schema = (runnerFactSchemas as Record<string, z.ZodType>)[record.type];
      if (!schema) return `unknown event type "${record.type}" for the runner`;
      return dataProblem(record.type, schema, record.data);
    }
    if (!isTransitionRecord(record)) return `record for actor "${record.actor}" has no state`;
    if (record.type === 'actor.started') {
      const problem = dataProblem(record.type, actorInputSchemas['actor.started'], record.data);
      if (problem) return problem;
      const machine = (record.data as { machine: string }).machine;
      if (machineOf.has(record.actor)) return `actor "${record.actor}" is started twice`;
      const schemas = catalogue.get(machine);
      if (!schemas) return `unknown machine "${machine}" for actor "${record.actor}"`;
      machineOf.set(record.actor, machine);
      return (
        dataProblem(`the input of ${machine}`, schemas.input, (record.data as { input: unknown }).input) ??
        effectsProblem(record.effects, schemas.effects)
      );
    }
    const machine = machineOf.get(record.actor);
    if (machine === undefined) return `actor "${record.actor}" receives "${record.type}" before actor.started`;
    const schemas = catalogue.get(machine);
    const schema = (actorInputSchemas as Record<string, z.ZodType>)[record.type] ?? schemas?.events[record.type];
    if (!schema) return `unknown event type "${record.type}" for actor "${record.actor}" (machine ${machine})`;
    return dataProblem(record.type, schema, record.data) ?? effectsProblem(record.effects, schemas?.effects);
  };
}

/**
 * Why a record's effect list is unusable: timer effects must have the params the runner reads
 * back on resume; a custom action's params must fit its schema where the machine gives one.
 */
function effectsProblem(effects: readonly Effect[], custom: EffectSchemas | undefined): string | undefined {
  for (let i = 0; i < effects.length; i++) {
    const effect = effects[i]!;
    const schema = timerEffectSchemas[effect.type] ?? custom?.[effect.type];
    if (!schema) continue;
    const result = schema.safeParse(effect.params);
    if (!result.success) return `effects.${i} (${effect.type}) params: ${describeIssue(result.error.issues[0])}`;
  }
  return undefined;
}

function dataProblem(type: string, schema: z.ZodType, data: unknown): string | undefined {
  const result = schema.safeParse(data);
  if (result.success) return undefined;
  return `${type.includes(' ') ? type : `data of ${type}`}: ${describeIssue(result.error.issues[0])}`;
}

/** One line for the first issue of a zod error: where, then what. */
export function describeIssue(issue: z.core.$ZodIssue | undefined): string {
  if (!issue) return 'invalid';
  const where = issue.path.length > 0 ? issue.path.join('.') : '(root)';
  return `${where}: ${issue.message}`;
}
