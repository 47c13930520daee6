import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { expect } from 'vitest';
import { CLI, warden } from './cli.js';
import { processesWithEnv } from './processes.js';

/** Polls `condition` every few ms until it holds; fails the test after `withinMs`. */
export async function until(condition: () => boolean, what: string, withinMs = 20_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** SIGKILLs the live processes carrying `name=value` (a test's own tag) and checks none is left. */
export async function killTagged(name: string, value: string): Promise<void> {
  for (let round = 0; round < 200; round++) {
    const left = processesWithEnv(name, value);
    if (left.length === 0) return;
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  expect(processesWithEnv(name, value)).toEqual([]);
}

/**
 * The overlap of issue 12, point 8, with awaited conditions instead of sleeps: the first holder's
 * CMD is a shell whose child (warden's grandchild) writes `A-child` into the section every 10 ms,
 * forever; once it has written, the first warden is SIGKILLed, and the next holder's CMD records
 * whether that grandchild is still running when it starts (`A-alive`), then `B-start`, 200 ms of
 * section, `B-end`. Returns the section file's lines, the next holder's result, and the
 * processes carrying the test's tag once it is over (the caller expects none).
 */
export async function overlapAfterSigkill(
  dir: string,
  first: (cmd: string[]) => string[],
  next: (cmd: string[]) => string[],
): Promise<{ lines: string[]; next: { code: number | undefined; stdout: string; stderr: string }; left: number[] }> {
  const tag = randomUUID();
  const env = { HOLD_TEST_TAG: tag };
  const crit = join(dir, 'crit.log');
  const childPid = join(dir, 'child.pid');
  const childScript = join(dir, 'child.sh');
  writeFileSync(childScript, 'echo $$ > "$1"\nwhile :; do echo A-child >> "$2"; sleep 0.01; done\n');
  try {
    // Its output is not read: the grandchild keeps it open after the warden dies.
    const a = execa('node', [CLI, ...first(['sh', '-c', 'sh "$0" "$1" "$2"; true', childScript, childPid, crit])], { reject: false, env, stdio: 'ignore' });
    await until(() => existsSync(crit) && readFileSync(crit, 'utf8').includes('A-child'), "the first holder's grandchild writing");
    a.kill('SIGKILL');
    await a;
    const check = 'p=$(cat "$0"); s=$(cut -d" " -f3 "/proc/$p/stat" 2>/dev/null); if [ -n "$s" ] && [ "$s" != Z ]; then echo A-alive >> "$1"; fi; echo B-start >> "$1"; sleep 0.2; echo B-end >> "$1"';
    const b = await warden(next(['sh', '-c', check, childPid, crit]), { env });
    const left = processesWithEnv('HOLD_TEST_TAG', tag);
    return { lines: readFileSync(crit, 'utf8').trim().split('\n'), next: b, left };
  } finally {
    await killTagged('HOLD_TEST_TAG', tag);
  }
}

/** The lines of the section file from the next holder's `B-start` on. */
export function fromBStart(lines: string[]): string[] {
  return lines.slice(lines.indexOf('B-start'));
}
