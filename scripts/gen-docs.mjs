#!/usr/bin/env node
// Regenerates docs/events.md from the event schemas (run after `npm run build`).
import { writeFileSync } from 'node:fs';
import { builtInMachines, renderEventCatalogue } from '../dist/index.js';

const catalogue = new Map(builtInMachines.map((d) => [d.name, d]));
writeFileSync(new URL('../docs/events.md', import.meta.url), renderEventCatalogue(catalogue));
console.log('wrote docs/events.md');
