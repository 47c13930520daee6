import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { UsageError } from '../errors.js';
import { builtInMachines } from '../machines/catalogue.js';
import type { MachineDefinition } from '../machines/definition.js';

/**
 * The machines a log is read with: Warden's own, plus (and overriding by name) those a module
 * given with `--machines FILE` exports as `machines` — how an embedder replays its own machines.
 */
export async function machinesFor(modulePath: string | undefined): Promise<readonly MachineDefinition[]> {
  if (modulePath === undefined) return builtInMachines;
  let loaded: { machines?: unknown };
  try {
    loaded = (await import(pathToFileURL(resolve(modulePath)).href)) as { machines?: unknown };
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new UsageError(`--machines ${modulePath}: cannot load: ${reason}`);
  }
  const extra = loaded.machines;
  if (!Array.isArray(extra) || !extra.every(isDefinition)) {
    throw new UsageError(`--machines ${modulePath}: must export "machines", an array of machine definitions`);
  }
  const byName = new Map(builtInMachines.map((d) => [d.name, d]));
  for (const definition of extra) byName.set(definition.name, definition);
  return [...byName.values()];
}

function isDefinition(value: unknown): value is MachineDefinition {
  const d = value as Partial<MachineDefinition> | null;
  return typeof d?.name === 'string' && typeof d.machine === 'object' && typeof d.events === 'object' && typeof d.input === 'object';
}
