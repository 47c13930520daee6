import { appendFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resultInOutputLog } from '../../src/effects/jobProcess.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const line = (event: unknown) => `${JSON.stringify(event)}\n`;

describe('resultInOutputLog: a result line a dead run wrote but never logged', () => {
  it('finds the last result line among the output, and nothing where there is none', () => {
    const dir = tempDir();
    const log = join(dir, 'job.log');
    writeFileSync(log, line({ type: 'system', subtype: 'init' }) + line({ type: 'assistant', message: { content: [] } }));
    expect(resultInOutputLog(log)).toBeNull();
    appendFileSync(log, line({ type: 'result', subtype: 'success', is_error: false, total_cost_usd: 0.5 }) + 'stderr noise after it\n');
    expect(resultInOutputLog(log)).toMatchObject({ subtype: 'success', isError: false, costUsd: 0.5 });
    expect(resultInOutputLog(join(dir, 'missing.log'))).toBeNull();
  });

  it('does not follow a symlink, and reads no directory', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'target'), line({ type: 'result', subtype: 'success', is_error: false }));
    symlinkSync(join(dir, 'target'), join(dir, 'link.log'));
    expect(resultInOutputLog(join(dir, 'link.log'))).toBeNull();
    mkdirSync(join(dir, 'a-dir'));
    expect(resultInOutputLog(join(dir, 'a-dir'))).toBeNull();
  });

  it('reads only the tail of a huge file, from the first whole line in it', () => {
    const dir = tempDir();
    const log = join(dir, 'big.log');
    // A result far back (more than 32 MiB before the end) is not looked at; one near the end is.
    writeFileSync(log, line({ type: 'result', subtype: 'error_during_execution', is_error: true }));
    const filler = `${'x'.repeat(1024 * 1024 - 1)}\n`;
    for (let i = 0; i < 33; i++) appendFileSync(log, filler);
    expect(resultInOutputLog(log)).toBeNull();
    appendFileSync(log, line({ type: 'result', subtype: 'success', is_error: false }));
    expect(resultInOutputLog(log)).toMatchObject({ subtype: 'success' });
  });
});
