import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { clearEarlierHolds } from '../../src/effects/guardedCommand.js';
import { readStartTime } from '../../src/effects/processIdentity.js';
import { killUntilGone, taggedProcesses } from '../../src/effects/processTree.js';
import { killTagged, until } from '../helpers/holds.js';
import { exited, processesWithEnv } from '../helpers/processes.js';

// Every process these tests start carries this tag, and none is left after each test.
const TAG = `PROCESS_TREE_TEST_${process.pid}`;
let value = '';
afterEach(async () => {
  await killTagged(TAG, value);
});

/** A shell in a group of its own, tagged, whose child `sleep` dropped the tag from its environment. */
async function taggedShellWithUntaggedChild(): Promise<{ shell: number; sleeper: number }> {
  value = randomUUID();
  const shell = execa('sh', ['-c', `env -u ${TAG} sleep 1000 & echo $!; wait`], { env: { [TAG]: value }, detached: true, reject: false });
  const sleeper = await new Promise<number>((resolve) => shell.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  // Until it has exec'd sleep, the child still carries the tag.
  await until(() => readFileSync(`/proc/${sleeper}/cmdline`, 'latin1').startsWith('sleep\0'), 'the child to exec sleep');
  return { shell: shell.pid!, sleeper };
}

describe('taggedProcesses and clearEarlierHolds', () => {
  it('find a tagged process and, by its process group, a child that dropped the tag; kill both and check they are gone', async () => {
    const { shell, sleeper } = await taggedShellWithUntaggedChild();
    expect(processesWithEnv(TAG, value)).toEqual([shell]);
    expect(taggedProcesses(TAG, (v) => v === value).map((p) => p.pid).sort()).toEqual([shell, sleeper].sort());
    expect(taggedProcesses(TAG, (v) => v === 'another holding')).toEqual([]);
    const { killed, survivors } = await clearEarlierHolds(TAG, (v) => v === value, 5_000);
    expect(killed.sort()).toEqual([shell, sleeper].sort());
    expect(survivors).toEqual([]);
    await until(() => exited(shell) && exited(sleeper), 'both to be gone');
  });
});

describe('killUntilGone', () => {
  it('never signals a pid whose start time is not the one it was found with (a reused pid)', async () => {
    value = randomUUID();
    const sleeper = execa('sleep', ['1000'], { env: { [TAG]: value }, reject: false });
    const pid = sleeper.pid!;
    const startTime = Number(readStartTime(pid));
    const stale = await killUntilGone(() => [{ pid, startTime: startTime + 1 }], 50);
    expect(stale).toEqual({ killed: [], survivors: [pid] });
    expect(exited(pid)).toBe(false);
    const gone = await killUntilGone(() => (exited(pid) ? [] : [{ pid, startTime }]), 5_000);
    expect(gone).toEqual({ killed: [pid], survivors: [] });
    expect((await sleeper).signal).toBe('SIGKILL');
  });
});
