import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtInMachines } from '../../src/machines/catalogue.js';
import { renderEventCatalogue } from '../../src/store/eventCatalogue.js';

describe('docs/events.md', () => {
  it('is what the schemas render (run `npm run docs` after changing an event)', () => {
    const committed = readFileSync(join(import.meta.dirname, '../../docs/events.md'), 'utf8');
    expect(committed).toBe(renderEventCatalogue(new Map(builtInMachines.map((d) => [d.name, d]))));
  });

  it('lists every runner record type and every event of every built-in machine', () => {
    const doc = renderEventCatalogue(new Map(builtInMachines.map((d) => [d.name, d])));
    const listed = [...doc.matchAll(/^### `([^`]+)`$/gm)].map((m) => m[1]);
    const expected = [
      'run.started',
      'run.stopped',
      'log.tornTail',
      'actor.started',
      'timer.fired',
      'effect.failed',
      ...builtInMachines.flatMap((d) => Object.keys(d.events)),
    ];
    expect(listed).toEqual(expected);
  });
});
