import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { emit, fromPromise, initialTransition, log, setup, transition, type AnyMachineSnapshot } from 'xstate';
import { z } from 'zod';
import { MachineContractError } from '../../src/errors.js';
import { demoDefinition } from '../../src/machines/demo.machine.js';
import { machineEventOf } from '../../src/runner/replayer.js';
import { snapshotHash, Stepper } from '../../src/runner/step.js';
import { readLog } from '../../src/store/logReader.js';
import { isTransitionRecord } from '../../src/store/record.js';
import type { DemoEvent, DemoInput } from '../../src/store/events/demo.events.js';

const golden = (name: string) => join(import.meta.dirname, '../fixtures/logs', name);

describe('the stepper', () => {
  it.each(['demo-answered.jsonl', 'demo-gave-up.jsonl', 'demo-resumed.jsonl'])(
    'computes what xstate\'s own transition() computes, step by step through %s',
    (file) => {
      const stepper = new Stepper(demoDefinition);
      let ours: AnyMachineSnapshot | undefined;
      let theirs: ReturnType<typeof initialTransition<typeof demoDefinition.machine>>[0] | undefined;
      for (const record of readLog(golden(file)).records.filter(isTransitionRecord)) {
        const mine =
          record.type === 'actor.started'
            ? stepper.initial((record.data as { input: unknown }).input)
            : stepper.step(ours!, machineEventOf(record));
        const [snapshot, actions] =
          record.type === 'actor.started'
            ? initialTransition(demoDefinition.machine, (record.data as { input: DemoInput }).input)
            : transition(demoDefinition.machine, theirs!, machineEventOf(record) as DemoEvent);
        expect(mine.state).toEqual(snapshot.value);
        expect(mine.hash).toBe(snapshotHash(snapshot));
        expect(mine.snapshot.status).toBe(snapshot.status);
        const custom = actions.filter((a) => !a.type.startsWith('xstate.')).map((a) => a.type);
        expect(mine.effects.filter((e) => !e.type.startsWith('timer.')).map((e) => e.type)).toEqual(custom);
        ours = mine.snapshot;
        theirs = snapshot;
      }
    },
  );

  it.each([
    ['invokes an actor', setup({ actors: { work: fromPromise(async () => 1) } }).createMachine({ invoke: { src: 'work' } })],
    ['logs with xstate.log', setup({}).createMachine({ entry: log('hello') })],
    ['emits', setup({}).createMachine({ entry: emit({ type: 'x' }) })],
  ])('refuses a machine that %s: effects belong to the runner', (_what, machine) => {
    const stepper = new Stepper({ name: 'odd', machine, input: z.undefined(), events: {} });
    expect(() => stepper.initial(undefined)).toThrow(MachineContractError);
    expect(() => stepper.initial(undefined)).toThrow(/^machine odd: uses xstate\./);
  });
});
