import type { MachineDefinition } from './definition.js';
import { demoDefinition } from './demo.machine.js';
import { jobDefinition } from './job.machine.js';
import { leaseDefinition } from './lease.machine.js';
import { pollDefinition } from './poll.machine.js';
import { queueDefinition } from './queue.machine.js';
import { supervisorDefinition } from './supervisor.machine.js';

/** Every machine Warden ships: what `warden log` and `warden replay` know without being told. */
export const builtInMachines: readonly MachineDefinition[] = [leaseDefinition, queueDefinition, pollDefinition, supervisorDefinition, jobDefinition, demoDefinition];
