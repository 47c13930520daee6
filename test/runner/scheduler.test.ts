import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runScheduler } from '../../src/runner/scheduler.js';
import { queueStatus } from '../../src/runner/queueStatus.js';
import type { LogRecord } from '../../src/store/record.js';
import { jobProcesses, slugOfJobId, writeProject } from '../helpers/queueProject.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const ours = (id: string) => slugOfJobId(id).startsWith('qs-');
afterEach(() => {
  expect([...jobProcesses()].filter(([id]) => ours(id)), 'job processes left behind').toEqual([]);
});

/**
 * Another holder takes the lease over once the first job has spawned (as if this scheduler had
 * been paused past its TTL): the lock now holds someone else's acquisition, of a process that has
 * since died, so the next scheduler can take it.
 */
function takeOverAtFirstSpawn(dir: string) {
  let done = false;
  return (record: LogRecord) => {
    if (done || record.type !== 'job.spawned') return;
    done = true;
    const lockPath = join(dir, '.warden', 'scheduler.lock');
    const lock = JSON.parse(readFileSync(lockPath, 'utf8'));
    writeFileSync(`${lockPath}.forged`, JSON.stringify({ ...lock, ownerId: 'thief', lockId: 'stolen', pid: 999_999_999, pidStartTime: null, epoch: lock.epoch + 1 }));
    renameSync(`${lockPath}.forged`, lockPath);
  };
}

describe('runScheduler (the library)', () => {
  it('stops at once when its lease is taken over, and the next holder kills what it left running', async () => {
    const dir = tempDir();
    writeProject(dir, [{ slug: 'qs-long', agent: ['--work', '60000', '--result', 'success'] }]);
    const first = await runScheduler({ dir, once: true, control: false, onRecord: takeOverAtFirstSpawn(dir) });
    expect(first.stoppedBy).toBe('lost');
    // The deposed scheduler wrote nothing more; its job still runs, the log says "running".
    expect(queueStatus(dir).jobs[0]).toMatchObject({ status: 'running' });
    expect([...jobProcesses()].filter(([id]) => ours(id)).length).toBe(1);
    // The next holder interrupts it (killing it) and runs it again.
    writeProject(dir, [{ slug: 'qs-long', agent: ['--result', 'success'] }]);
    const second = await runScheduler({ dir, once: true, control: false });
    expect(second).toMatchObject({ stoppedBy: 'drained', allCompleted: true });
    expect(queueStatus(dir).jobs[0]).toMatchObject({ status: 'completed', runs: 2, interruptions: 1 });
  }, 30_000);

  it('a job interrupted more often than requeueInterrupted allows stays interrupted', async () => {
    const dir = tempDir();
    writeProject(dir, [{ slug: 'qs-crashy', agent: ['--work', '60000', '--result', 'success'] }], { requeueInterrupted: 0 });
    await runScheduler({ dir, once: true, control: false, onRecord: takeOverAtFirstSpawn(dir) });
    const second = await runScheduler({ dir, once: true, control: false });
    expect(second.allCompleted).toBe(false);
    expect(queueStatus(dir).jobs[0]).toMatchObject({ status: 'interrupted', runs: 1, interruptions: 1 });
    expect(queueStatus(dir).jobs[0]!.reason).toMatch(/not run again \(requeueInterrupted 0\)/);
  }, 30_000);
});
