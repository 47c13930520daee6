import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/store/config.js';
import { DEFAULT_AGENT_COMMAND, loadConfig } from '../../src/store/configFile.js';
import { DEFAULT_JOB_TIMEOUTS } from '../../src/store/events/job.events.js';
import { parseJobFile, readJobsDir } from '../../src/store/jobFile.js';
import { warden } from '../helpers/cli.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();

describe('warden init', () => {
  it('creates DIR/.warden/ (0700) with a config that loads and an example job that parses', async () => {
    const dir = join(tempDir(), 'project');
    const result = await warden(['init', dir]);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout.split('\n')).toEqual([`wrote ${join(dir, '.warden', 'config.json')}`, `wrote ${join(dir, '.warden', 'jobs', 'example.md')}`]);
    expect(statSync(join(dir, '.warden')).mode & 0o777).toBe(0o700);

    expect(await loadConfig(dir)).toEqual({ concurrencyCap: 4, agent: { command: [...DEFAULT_AGENT_COMMAND] }, timeouts: DEFAULT_JOB_TIMEOUTS });
    const example = join(dir, '.warden', 'jobs', 'example.md');
    const parsed = parseJobFile(example, readFileSync(example));
    expect(parsed).toMatchObject({ ok: true, job: { slug: 'example', title: expect.any(String), parallelGroup: expect.any(Number), groupFrom: 'frontmatter', prompt: expect.stringMatching(/\S/) } });
    expect(readJobsDir(join(dir, '.warden', 'jobs')).problems).toEqual([]);
  });

  it('a second init leaves every existing file alone, names them on one line, and exits 0', async () => {
    const dir = tempDir();
    expect((await warden(['init'], { cwd: dir })).code).toBe(0);
    const config = join(dir, '.warden', 'config.json');
    writeFileSync(config, '{"concurrencyCap": 2}\n');
    const again = await warden(['init'], { cwd: dir });
    expect(again).toMatchObject({ code: 0, stderr: '' });
    expect(again.stdout).toBe('left alone, already there (--force overwrites): .warden/config.json, .warden/jobs/example.md');
    expect(readFileSync(config, 'utf8')).toBe('{"concurrencyCap": 2}\n');
  });

  it('writes only what is missing, and --force overwrites', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, '.warden'), { mode: 0o755 });
    const config = join(dir, '.warden', 'config.json');
    writeFileSync(config, '{"concurrencyCap": 2}\n');
    const partial = await warden(['init', dir]);
    expect(partial.stdout).toBe(`wrote ${join(dir, '.warden', 'jobs', 'example.md')}\nleft alone, already there (--force overwrites): ${config}`);
    expect(readFileSync(config, 'utf8')).toBe('{"concurrencyCap": 2}\n');

    const forced = await warden(['init', dir, '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toBe(`wrote ${config}\nwrote ${join(dir, '.warden', 'jobs', 'example.md')}`);
    expect(configSchema.parse(JSON.parse(readFileSync(config, 'utf8')))).toMatchObject({ concurrencyCap: 4 });
  });

  it.each([
    [['init', '--bogus'], /^warden: unknown option --bogus for warden init \(see warden init --help\)$/],
    [['init', 'a', 'b'], /^warden: init: unexpected argument "b" \(warden init \[DIR\] \[--force\]\)$/],
    [['init', '--force=yes'], /^warden: init: /],
  ])('bad arguments %j: exit 2, one line on stderr, nothing written', async (args, message) => {
    const dir = tempDir();
    const result = await warden(args, { cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(existsSync(join(dir, '.warden'))).toBe(false);
  });

  it('a DIR that is a file: exit 2 naming it', async () => {
    const file = join(tempDir(), 'not-a-dir');
    writeFileSync(file, '');
    const result = await warden(['init', file]);
    expect(result).toMatchObject({ code: 2, stderr: `warden: ${file}: exists and is not a directory` });
  });
});
