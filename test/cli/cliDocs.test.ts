import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderCliReference, renderReadmeUsage, spliceGenerated } from '../../src/cli/cliDocs.js';
import { COMMANDS } from '../../src/cli/commandTable.js';

const ROOT = join(import.meta.dirname, '../..');
const read = (name: string) => readFileSync(join(ROOT, name), 'utf8');

describe('the command reference in docs/cli.md and README.md (npm run docs)', () => {
  it('docs/cli.md is what the generator writes from the option table', () => {
    expect(read('docs/cli.md')).toBe(spliceGenerated(read('docs/cli.md'), renderCliReference(), 'docs/cli.md'));
  });

  it('README.md is what the generator writes from the option table', () => {
    expect(read('README.md')).toBe(spliceGenerated(read('README.md'), renderReadmeUsage(), 'README.md'));
  });

  it('every flag of every command is in both, exec --cwd --slug --prompt-via included', () => {
    const cli = read('docs/cli.md');
    const readme = read('README.md');
    for (const [name, spec] of Object.entries(COMMANDS)) {
      for (const flag of Object.keys(spec.options)) {
        expect(cli, `warden ${name} --${flag}`).toMatch(new RegExp(`### \`warden ${name}\`[^#]*\\| \`--${flag}\\b`));
        expect(readme, `warden ${name} --${flag}`).toMatch(new RegExp(`^warden ${name} .*\\[--${flag}\\b`, 'm'));
      }
    }
  });
});
