import { chmodSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { useTempDirs } from '../helpers/tempDir.js';

const ROOT = join(import.meta.dirname, '../..');
const tempDir = useTempDirs();

/** Every ```ts block of README.md and docs/*.md, with the file and line it starts on. */
function examples(): { where: string; code: string }[] {
  const files = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const found: { where: string; code: string }[] = [];
  for (const file of files) {
    const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (lines[i] !== '```ts') continue;
      const end = lines.indexOf('```', i + 1);
      found.push({ where: `${file}:${i + 1}`, code: lines.slice(i + 1, end).join('\n') });
      i = end;
    }
  }
  return found;
}

/**
 * What the README tells a user to install for the examples: warden itself (here, a link to this
 * clone, as `npm install /path/to/warden` makes) and xstate, which the Runner example imports.
 */
const INSTALLED = ['xstate'];

/**
 * A user's project: node_modules holding only what the README says to install; a stand-in
 * `claude` on PATH (prints one successful stream-json result); the task.md the runJob examples
 * name; and a `town` of workers for the worker-lock examples, whose `/town` is mapped here.
 */
function project(): { dir: string; env: Record<string, string> } {
  const dir = tempDir();
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(ROOT, join(dir, 'node_modules', 'warden'));
  for (const name of INSTALLED) symlinkSync(join(ROOT, 'node_modules', name), join(dir, 'node_modules', name));
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin', 'claude'), `#!/bin/sh\ncat >/dev/null\necho '{"type":"result","subtype":"success","is_error":false,"result":"done","total_cost_usd":0}'\n`);
  chmodSync(join(dir, 'bin', 'claude'), 0o755);
  writeFileSync(join(dir, 'task.md'), 'Say done.\n');
  mkdirSync(join(dir, 'town', 'polecats', 'ace'), { recursive: true });
  return { dir, env: { PATH: `${join(dir, 'bin')}:${process.env.PATH ?? ''}` } };
}

/** Names an example calls for the reader's own code (`await doTheWork(…)`): defined as no-ops. */
const READERS_OWN = ['doTheWork', 'runTheAgent'];

async function runExample(code: string, dir: string, env: Record<string, string>) {
  const prelude = READERS_OWN.filter((name) => new RegExp(`\\b${name}\\(`).test(code)).map((name) => `const ${name} = async () => {};\n`).join('');
  const js = ts.transpileModule(prelude + code.replaceAll("'/town", `'${join(dir, 'town')}`), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  writeFileSync(join(dir, 'example.mjs'), js);
  const result = await execa('node', ['example.mjs'], { cwd: dir, env, reject: false, timeout: 60_000 });
  return { code: result.exitCode, stderr: String(result.stderr) };
}

describe('the TypeScript examples in README.md and docs/', () => {
  const all = examples();

  it('there are examples to run', () => {
    expect(all.length).toBeGreaterThanOrEqual(8);
  });

  it.each(all.map((e) => [e.where, e.code] as const))('%s runs (twice, in the same dir, where it says it resumes)', async (_where, code) => {
    const { dir, env } = project();
    const runs = /resume/i.test(code) ? 2 : 1;
    for (let run = 1; run <= runs; run++) {
      expect(await runExample(code, dir, env), `run ${run}`).toMatchObject({ code: 0, stderr: '' });
    }
  }, 150_000);
});
