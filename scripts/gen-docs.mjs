#!/usr/bin/env node
// Regenerates docs/events.md, docs/config.schema.json and docs/config.md from the schemas (run after `npm run build`).
import { writeFileSync } from 'node:fs';
import { builtInMachines, renderEventCatalogue } from '../dist/index.js';
import { renderConfigReference, renderConfigSchema } from '../dist/store/configDocs.js';

const catalogue = new Map(builtInMachines.map((d) => [d.name, d]));
const docs = {
  'events.md': renderEventCatalogue(catalogue),
  'config.schema.json': renderConfigSchema(),
  'config.md': renderConfigReference(),
};
for (const [name, text] of Object.entries(docs)) {
  writeFileSync(new URL(`../docs/${name}`, import.meta.url), text);
  console.log(`wrote docs/${name}`);
}
