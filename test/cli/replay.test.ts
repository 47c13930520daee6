import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CLI, warden } from '../helpers/cli.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const golden = (name: string) => join(import.meta.dirname, '../fixtures/logs', name);
const example = join(import.meta.dirname, '../../examples/demo-events.jsonl');

/** A module for --machines that swaps one implementation of the demo machine, as a code change would. */
function changedMachines(implementation: string): string {
  const file = join(tempDir(), 'machines.mjs');
  const index = pathToFileURL(join(CLI, '../../index.js')).href;
  writeFileSync(
    file,
    `import { demoDefinition } from ${JSON.stringify(index)};\n` +
      `export const machines = [{ ...demoDefinition, machine: demoDefinition.machine.provide(${implementation}) }];\n`,
  );
  return file;
}

describe('warden replay', () => {
  it('verifies the shipped example log, as the README says', async () => {
    const { code, stdout, stderr } = await warden(['replay', example, '--verify']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^replayed to seq 9: 9 records, every step verified$/m);
    expect(stdout).toMatch(/^ {2}demo {2}\[demo\] {2}answered \(final\)/m);
  });

  it('reads the project log with --dir', async () => {
    const dir = tempDir();
    const { mkdirSync, copyFileSync } = await import('node:fs');
    mkdirSync(join(dir, '.warden'));
    copyFileSync(golden('demo-gave-up.jsonl'), join(dir, '.warden', 'events.jsonl'));
    const { code, stdout } = await warden(['replay', '--dir', dir, '--verify', '--json']);
    expect(code).toBe(0);
    const result = JSON.parse(stdout);
    expect(result).toMatchObject({ ok: true, verified: true, actors: [{ id: 'demo', state: 'gaveUp', status: 'done' }] });
  });

  it('prints every actor as it was at --at SEQ', async () => {
    const { code, stdout } = await warden(['replay', golden('demo-gave-up.jsonl'), '--at', '4', '--json']);
    expect(code).toBe(0);
    const result = JSON.parse(stdout);
    expect(result.lastSeq).toBe(4);
    expect(result.actors).toMatchObject([{ id: 'demo', state: 'waiting', context: { attempt: 1 } }]);
    expect(result.pendingTimers).toMatchObject([{ id: 'xstate.after.retryDelay.demo.waiting', armedSeq: 4 }]);
  });

  it('passes with the unchanged machine given as a module', async () => {
    const { code } = await warden(['replay', golden('demo-answered.jsonl'), '--verify', '--machines', changedMachines('{}')]);
    expect(code).toBe(0);
  });

  it.each([
    ['a delay', '{ delays: { replyTimeout: 999 } }', 3, 'effects'],
    ['a guard', '{ guards: { attemptsLeft: () => false } }', 4, 'state'],
  ])('fails at the right seq when %s of the machine changed', async (_what, implementation, seq, field) => {
    const machines = changedMachines(implementation);
    const { code, stderr } = await warden(['replay', golden('demo-answered.jsonl'), '--verify', '--machines', machines]);
    expect(code).toBe(1);
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr).toContain(`warden: replay diverged at seq ${seq} (actor demo): ${field} expected`);

    const json = await warden(['replay', golden('demo-answered.jsonl'), '--verify', '--json', '--machines', machines]);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, error: { code: 'non_determinism', seq, field } });
  });

  it.each([
    [['replay', '--at', '0'], '--at: expected a positive integer, got "0"'],
    [['replay', '--at', '99', 'EXAMPLE'], 'ends at seq 9'],
    [['replay', '--dir', '.', 'EXAMPLE'], 'give --dir or FILE, not both'],
    [['replay', 'EXAMPLE', 'EXAMPLE'], 'replay: unexpected argument'],
    [['replay', '--frobnicate'], 'unknown option --frobnicate for warden replay (see warden replay --help)'],
    [['replay', '--machines', '/nonexistent/machines.mjs', 'EXAMPLE'], 'replay: --machines /nonexistent/machines.mjs: no such file'],
    [['replay', 'no-such-file.jsonl'], 'replay: no-such-file.jsonl: no such file'],
    [['frobnicate'], 'unknown command "frobnicate"'],
  ])('rejects %j with exit 2 and one line', async (args, message) => {
    const { code, stderr, stdout } = await warden(args.map((a) => (a === 'EXAMPLE' ? example : a)));
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr).toContain(message);
  });
});
