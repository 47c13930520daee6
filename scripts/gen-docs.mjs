#!/usr/bin/env node
// Regenerates docs/events.md, docs/config.schema.json and docs/config.md from the schemas, and the
// command reference in docs/cli.md and README.md (between their markers) from the CLI's option
// table, src/cli/commandTable.ts (run after `npm run build`).
import { readFileSync, writeFileSync } from 'node:fs';
import { builtInMachines, renderEventCatalogue } from '../dist/index.js';
import { renderConfigReference, renderConfigSchema } from '../dist/store/configDocs.js';
import { renderCliReference, renderReadmeUsage, spliceGenerated } from '../dist/cli/cliDocs.js';

const url = (name) => new URL(`../${name}`, import.meta.url);
const spliced = (name, generated) => spliceGenerated(readFileSync(url(name), 'utf8'), generated, name);
const docs = {
  'docs/events.md': renderEventCatalogue(new Map(builtInMachines.map((d) => [d.name, d]))),
  'docs/config.schema.json': renderConfigSchema(),
  'docs/config.md': renderConfigReference(),
  'docs/cli.md': spliced('docs/cli.md', renderCliReference()),
  'README.md': spliced('README.md', renderReadmeUsage()),
};
for (const [name, text] of Object.entries(docs)) {
  writeFileSync(url(name), text);
  console.log(`wrote ${name}`);
}
