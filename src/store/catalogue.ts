import type { z } from 'zod';
import { actorInputSchemas, runnerFactSchemas, RUNNER_ACTOR } from './runnerEvents.js';
import { isTransitionRecord, type LogRecord } from './record.js';

/** The data schema of each event type a machine accepts, keyed by event type. */
export type EventSchemas = Readonly<Record<string, z.ZodType>>;

/** What the log needs to know of a machine: the schema of its input and of each event it accepts. */
export interface MachineSchemas {
  readonly input: z.ZodType;
  readonly events: EventSchemas;
}

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
      return dataProblem(`the input of ${machine}`, schemas.input, (record.data as { input: unknown }).input);
    }
    const machine = machineOf.get(record.actor);
    if (machine === undefined) return `actor "${record.actor}" receives "${record.type}" before actor.started`;
    const schema =
      (actorInputSchemas as Record<string, z.ZodType>)[record.type] ?? catalogue.get(machine)?.events[record.type];
    if (!schema) return `unknown event type "${record.type}" for actor "${record.actor}" (machine ${machine})`;
    return dataProblem(record.type, schema, record.data);
  };
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
