/**
 * A damaged event log is named, never trusted: every corruption of a finished demo queue's log
 * is caught by `status` (a one-line banner, then what it can show, exit 2), `replay --verify`
 * and `run` (exit 2, one line naming file and line), and a log cut below what was committed is
 * refused instead of being taken for a crash's torn tail — so no finished job runs again.
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { warden } from '../helpers/cli.js';
import { processesWithEnv } from '../helpers/processes.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const EXAMPLE = join(import.meta.dirname, '../../examples/queue');
let base: string;

/** The demo queue, run to the end once; each test works on a copy. */
beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'warden-damage-'));
  cpSync(EXAMPLE, base, { recursive: true });
  const run = await warden(['run', '--dir', base, '--once'], { timeout: 120_000 });
  expect(run.code, run.stderr).toBe(0);
}, 150_000);

afterAll(() => rmSync(base, { recursive: true, force: true }));

function copy(): { dir: string; log: string; lines: string[] } {
  const dir = tempDir();
  cpSync(base, dir, { recursive: true });
  const log = join(dir, '.warden', 'events.jsonl');
  return { dir, log, lines: readFileSync(log, 'utf8').trimEnd().split('\n') };
}

/** 1-based number of the first line matching `pattern` after line `from`. */
function lineOf(lines: string[], pattern: RegExp, from = 1): number {
  const index = lines.findIndex((line, i) => i >= from && pattern.test(line));
  if (index === -1) throw new Error(`no line matches ${pattern}`);
  return index + 1;
}

/** Writes the log with line `n` (1-based) changed by `edit` (null: removed). */
function rewrite(log: string, lines: string[], n: number, edit: ((line: string) => string) | null): void {
  const out = [...lines];
  if (edit === null) out.splice(n - 1, 1);
  else {
    const changed = edit(out[n - 1]!);
    expect(changed).not.toBe(out[n - 1]);
    expect(() => JSON.parse(changed)).not.toThrow();
    out[n - 1] = changed;
  }
  writeFileSync(log, `${out.join('\n')}\n`);
}

/** A byte of a string value XOR 1: the line still parses, and only the checksum can tell. */
function flipInRunId(line: string): string {
  const at = line.indexOf('"runId":"') + '"runId":"'.length + 3;
  return line.slice(0, at) + String.fromCharCode(line.charCodeAt(at) ^ 1) + line.slice(at + 1);
}

const corruptions: Array<[string, (lines: string[]) => number, ((line: string) => string) | null]> = [
  ['a record deleted mid-log', (lines) => Math.floor(lines.length / 2), null],
  ['a flipped byte that still parses', (lines) => Math.floor(lines.length / 2), flipInRunId],
  ['an edited hash', (lines) => lineOf(lines, /"hash":"/, Math.floor(lines.length / 2)), (l) => l.replace(/"hash":"(.)/, (_m, c: string) => `"hash":"${c === 'a' ? 'b' : 'a'}`)],
  ['an edited state', (lines) => lineOf(lines, /"state":"exited"/), (l) => l.replace('"state":"exited"', '"state":"finishing"')],
  ['an edited exitCode', (lines) => lineOf(lines, /"exitCode":0/), (l) => l.replace('"exitCode":0', '"exitCode":1')],
  ['an edited ts', (lines) => Math.floor(lines.length / 3), (l) => l.replace(/"ts":"(\d{4})-/, (_m, y: string) => `"ts":"${Number(y) - 1}-`)],
];

describe('a corrupted log', () => {
  it.each(corruptions)('%s: status says so at the top and shows what it can, replay --verify and run name the line', async (_kind, pick, edit) => {
    const { dir, log, lines } = copy();
    const n = pick(lines);
    rewrite(log, lines, n, edit);
    // A deleted line is found where the next one now sits; any other where it was changed.
    const where = `.warden/events.jsonl:${n}:`;

    const status = await warden(['status', '--dir', dir], { cwd: dir });
    expect(status.code).toBe(2);
    const out = status.stdout.split('\n');
    expect(out[0]).toContain(`LOG DAMAGED: ${where}`);
    expect(out[0]).toMatch(/shown as of seq \d+, the last good record$/);
    expect(out.some((l) => l.startsWith('JOB '))).toBe(true);

    const replay = await warden(['replay', '--verify', '--dir', dir], { cwd: dir });
    expect(replay.code).toBe(2);
    expect(replay.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(replay.stderr).toContain(where);

    const before = readFileSync(log);
    const run = await warden(['run', '--dir', dir, '--once'], { cwd: dir, timeout: 60_000 });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`events.jsonl:${n}:`);
    expect(readFileSync(log).equals(before)).toBe(true);
  }, 60_000);
});

describe('a log cut below what was committed', () => {
  it.each([
    ['in the middle of a record', (size: number) => Math.floor(size * 0.44)],
    ['at a record boundary', (size: number) => size - 1, 'boundary'],
    ['just past the first record', () => 1],
    ['to nothing', () => 0],
  ] as Array<[string, (size: number) => number, string?]>)('%s: run --once, status and replay refuse it (exit 2, one line naming the gap) and no job runs again', async (_where, offsetOf, boundary) => {
    const { dir, log } = copy();
    const text = readFileSync(log, 'utf8');
    let offset = offsetOf(text.length);
    // At a boundary: the end of the line in the middle, so no torn tail is left at all.
    if (boundary) offset = text.indexOf('\n', Math.floor(text.length / 2)) + 1;
    truncateSync(log, offset);
    const runsBefore = readdirSync(join(dir, '.warden', 'runs'));

    const run = await warden(['run', '--dir', dir, '--once'], { cwd: dir, timeout: 60_000, env: { WARDEN_TEST_TAG: dir } });
    expect(run.code).toBe(2);
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/events\.jsonl:\d+: ends at seq \d+ \(byte \d+\), but seq \d+ was committed up to byte \d+ \(per events\.jsonl\.mark\)/);
    // Nothing was written or started: the log is as cut, no new run dir, no agent of this test alive.
    expect(statSync(log).size).toBe(offset);
    expect(readdirSync(join(dir, '.warden', 'runs'))).toEqual(runsBefore);
    expect(processesWithEnv('WARDEN_TEST_TAG', dir)).toEqual([]);

    const status = await warden(['status', '--dir', dir], { cwd: dir });
    expect(status.code).toBe(2);
    expect(status.stdout.split('\n')[0]).toMatch(/^LOG DAMAGED: .*but seq \d+ was committed/);

    const replay = await warden(['replay', '--dir', dir], { cwd: dir });
    expect(replay.code).toBe(2);
    expect(replay.stderr).toContain('was committed up to byte');

    const json = await warden(['status', '--json', '--dir', dir], { cwd: dir });
    expect(json.code).toBe(2);
    const { damage } = JSON.parse(json.stdout) as { damage: { file: string; line: number; reason: string; lastGoodSeq: number } };
    expect(damage.reason).toMatch(/was committed up to byte/);
    expect(damage.file).toMatch(/events\.jsonl$/);
  }, 60_000);

  it.each([
    ['in the middle', (size: number) => Math.floor(size * 0.44)],
    ['to nothing', () => 0],
  ] as Array<[string, (size: number) => number]>)('with no mark (a log from before marks) cut %s: the job files beside it are evidence, and run refuses it', async (_where, offsetOf) => {
    const { dir, log } = copy();
    rmSync(`${log}.mark`, { force: true });
    const offset = offsetOf(statSync(log).size);
    truncateSync(log, offset);
    const runsBefore = readdirSync(join(dir, '.warden', 'runs'));
    const run = await warden(['run', '--dir', dir, '--once'], { cwd: dir, timeout: 60_000 });
    expect(run.code).toBe(2);
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/events\.jsonl: ends at seq \d+, and runs\/\S+\.meta\.json beside it records job "\S+", which the log never started: committed records were lost/);
    expect(statSync(log).size).toBe(offset);
    expect(readdirSync(join(dir, '.warden', 'runs'))).toEqual(runsBefore);
    const status = await warden(['status', '--dir', dir], { cwd: dir });
    expect(status.code).toBe(2);
    expect(status.stdout.split('\n')[0]).toMatch(/^LOG DAMAGED: \.warden\/events\.jsonl: ends at seq \d+, and runs\//);
  }, 60_000);

  it("a warden exec run's files beside the log are not taken for lost records", async () => {
    const { dir } = copy();
    const id = '2026-12-03T09-00-00-000Z-0e0e0e0e';
    mkdirSync(join(dir, '.warden', 'runs', id));
    writeFileSync(join(dir, '.warden', 'runs', id, 'fix.meta.json'), JSON.stringify({ jobId: `${id}/fix` }));
    // Without its exec log it is a job this log lost; with it, exec's own.
    expect((await warden(['status', '--dir', dir], { cwd: dir })).code).toBe(2);
    mkdirSync(join(dir, '.warden', 'exec'));
    writeFileSync(join(dir, '.warden', 'exec', `${id}.jsonl`), '');
    const status = await warden(['status', '--dir', dir], { cwd: dir });
    expect(status.code, status.stdout).toBe(0);
    expect(status.stdout).not.toContain('LOG DAMAGED');
  }, 60_000);

  it('a crash that tears the record being written is still repaired, not refused', async () => {
    const { dir, log } = copy();
    const size = statSync(log).size;
    writeFileSync(log, '{"seq":999,"ts":"2026-', { flag: 'a' });
    const status = await warden(['status', '--dir', dir], { cwd: dir });
    expect(status.code).toBe(0);
    const run = await warden(['run', '--dir', dir, '--once'], { cwd: dir, timeout: 60_000 });
    expect(run.code, run.stderr).toBe(0);
    expect(readFileSync(log, 'utf8').slice(size)).toContain('"type":"log.tornTail"');
    expect((await warden(['replay', '--verify', '--dir', dir], { cwd: dir })).code).toBe(0);
  }, 60_000);
});
