import { copyFileSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { LogWriter } from '../../src/store/logWriter.js';
import { CLI, warden } from '../helpers/cli.js';
import { useTempDirs } from '../helpers/tempDir.js';
import { processGone } from '../helpers/processes.js';

const tempDir = useTempDirs();
const golden = (name: string) => join(import.meta.dirname, '../fixtures/logs', name);
const goldenLines = () => readFileSync(golden('demo-answered.jsonl'), 'utf8').trimEnd().split('\n');

/**
 * A log made of the golden lines with line `index` (0-based) replaced by `line`. The lines lose
 * their sums (a log from before sums): the checks under test here come after the chain's.
 */
function logWith(index: number, line: string): string {
  const lines = goldenLines();
  lines[index] = line;
  for (let i = 0; i < lines.length; i++) lines[i] = lines[i]!.replace(/,"sum":"[0-9a-f]{8}"\}$/, '}');
  const file = join(tempDir(), 'events.jsonl');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

describe('warden log', () => {
  it('prints one readable line per event, with the state reached and the effects asked for', async () => {
    const { code, stdout } = await warden(['log', golden('demo-answered.jsonl')]);
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(goldenLines().length);
    expect(lines[2]).toMatch(
      /^ +3 {2}2026-11-23T09:00:00\.000Z {2}demo {2}demo\.start {2}→ pinging {2}· sendPing \{"attempt":1\} {2}· arm xstate\.after\.replyTimeout\.demo\.pinging \+1000ms$/,
    );
  });

  it('prints the records themselves with --json', async () => {
    const { code, stdout } = await warden(['log', '--json', golden('demo-answered.jsonl')]);
    expect(code).toBe(0);
    expect(stdout.trimEnd().split('\n').map((l) => JSON.parse(l))).toEqual(goldenLines().map((l) => JSON.parse(l)));
  });

  it('reports a torn last line on stderr and prints every earlier record', async () => {
    const file = join(tempDir(), 'events.jsonl');
    copyFileSync(golden('demo-answered.jsonl'), file);
    const size = readFileSync(file).length;
    truncateSync(file, size - 10);
    const { code, stdout, stderr } = await warden(['log', file]);
    expect(code).toBe(0);
    expect(stdout.trimEnd().split('\n')).toHaveLength(goldenLines().length - 1);
    expect(stderr).toMatch(/^warden: \S+events\.jsonl: torn last line at byte \d+ \(\d+ bytes\) skipped$/);
  });

  it.each([
    ['not JSON', 3, '{"seq":4,', 'events.jsonl:4: not JSON'],
    ['a wrong envelope', 3, JSON.stringify({ seq: 4, ts: 'yesterday', runId: 'r', epoch: 1, actor: 'demo', type: 'demo.start', data: {} }), 'events.jsonl:4: bad record: ts: Invalid ISO datetime'],
    ['seq going backwards', 3, goldenLines()[1]!, 'events.jsonl:4: seq 2 is not greater than 3'],
    ['an unknown event type', 3, goldenLines()[3]!.replace('"timer.fired"', '"demo.explode"'), 'unknown event type "demo.explode"'],
    // A flipped byte in an effect ("params" → "paramr"): named by file:line, not a TypeError deep in replay.
    ['a timer effect without its params', 2, goldenLines()[2]!.replace('"params":{"id"', '"paramr":{"id"'), 'events.jsonl:3: effects.1 (timer.arm) params: (root): Invalid input'],
    ['a timer effect with a bad dueAt', 2, goldenLines()[2]!.replace('"dueAt":1', '"dueAt":-1'), 'events.jsonl:3: effects.1 (timer.arm) params: dueAt'],
    ["a custom action's params against the machine's schema", 2, goldenLines()[2]!.replace('{"attempt":1}', '{"attempt":"1"}'), 'events.jsonl:3: effects.0 (sendPing) params: attempt'],
  ])('rejects a log with %s: exit 2, one line naming file and line', async (_what, index, line, message) => {
    for (const command of ['log', 'replay']) {
      const { code, stderr } = await warden([command, logWith(index, line)]);
      expect(code).toBe(2);
      expect(stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(stderr).toContain(message);
      expect(stderr).not.toMatch(/^\s+at /m);
    }
  });

  it('rejects a 20 MB line with exit 2 and one line', async () => {
    const file = join(tempDir(), 'events.jsonl');
    writeFileSync(file, `${goldenLines()[0]}\n{"seq":2,"data":"${'x'.repeat(20 * 1024 * 1024)}"}\n`);
    const { code, stderr } = await warden(['log', file]);
    expect(code).toBe(2);
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/events\.jsonl:2: line is longer than \d+ bytes/);
  });

  it('follows the log live until interrupted', async () => {
    const dir = tempDir();
    const file = join(dir, '.warden', 'events.jsonl');
    const child = execa('node', [CLI, 'log', '--follow', '--dir', dir], { reject: false });
    const lines: string[] = [];
    let waiting: { n: number; resolve: () => void } | undefined;
    child.stdout!.on('data', (chunk: Buffer) => {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      if (waiting && lines.length >= waiting.n) waiting.resolve();
    });
    const seen = (n: number) =>
      new Promise<void>((resolve) => {
        waiting = { n, resolve };
        if (lines.length >= n) resolve();
      });
    // The file does not exist yet: the follower waits for it.
    const writer = LogWriter.open(file, { fsync: 'never' });
    const base = { ts: '2026-11-23T09:00:00.000Z', runId: 'r', epoch: 1, actor: 'runner' };
    writer.append({ ...base, type: 'run.started', data: { pid: 1, hostname: 'h', resumedFromSeq: 0 } });
    await seen(1);
    writer.append({ ...base, type: 'run.stopped', data: { reason: 'done' } });
    await seen(2);
    writer.close();
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(lines.map((l) => l.trim().split(/ {2}/)[3])).toEqual(['run.started', 'run.stopped']);
    expect(processGone(child.pid!)).toBe(true);
  });
});
