import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/store/config.js';
import { configJsonSchema, renderConfigReference, renderConfigSchema } from '../../src/store/configDocs.js';

const docs = (name: string) => readFileSync(join(import.meta.dirname, '../../docs', name), 'utf8');

describe('docs/config.schema.json and docs/config.md', () => {
  it('are what the schema renders (run `npm run docs` after changing the config schema)', () => {
    expect(docs('config.schema.json')).toBe(renderConfigSchema());
    expect(docs('config.md')).toBe(renderConfigReference());
  });

  it('the JSON Schema refuses unknown keys and carries every default an editor can show', () => {
    const schema = configJsonSchema();
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties ?? {})).toEqual(Object.keys(configSchema.shape));
    expect(schema.properties?.concurrencyCap).toMatchObject({ type: 'integer', minimum: 1, maximum: 20, default: 4 });
    expect(schema.properties?.agent?.properties?.command?.default).toEqual(['claude', '-p', '--output-format', 'stream-json', '--verbose']);
    expect(schema.properties?.timeouts?.properties?.maxDurationMs?.default).toBe(2 * 60 * 60 * 1000);
  });

  it('config.md has a row, with a meaning, for every top-level key', () => {
    const doc = docs('config.md');
    for (const key of Object.keys(configSchema.shape)) {
      expect(doc, key).toMatch(new RegExp(`^\\| \`${key.replace('$', '\\$')}\` \\| [^|]+ \\| [^|]* \\| [^|\\s][^|]* \\|$`, 'm'));
    }
  });

  it('every key has a description', () => {
    const missing: string[] = [];
    const walk = (node: ReturnType<typeof configJsonSchema>, prefix: string) => {
      for (const [key, sub] of Object.entries(node.properties ?? {})) {
        if (!sub.description) missing.push(`${prefix}${key}`);
        walk(sub, `${prefix}${key}.`);
        if (sub.items) walk(sub.items, `${prefix}${key}[].`);
      }
    };
    walk(configJsonSchema(), '');
    expect(missing).toEqual([]);
  });
});
