import { chmodSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { configPathOf } from '../store/configFile.js';
import { CONFIG_DEFAULTS, DEFAULT_AGENT_COMMAND } from '../store/configDefaults.js';
import { DEFAULT_JOB_TIMEOUTS } from '../store/events/job.events.js';
import { displayPath } from './args.js';
import { parseCommand } from './parse.js';
import { escapeControls } from './escape.js';

/** A small config with the defaults spelled out, so a user sees what there is to change. */
const CONFIG = {
  concurrencyCap: CONFIG_DEFAULTS.concurrencyCap,
  agent: { command: [...DEFAULT_AGENT_COMMAND] },
  timeouts: { ...DEFAULT_JOB_TIMEOUTS },
};

const EXAMPLE_JOB = `---
# A job file: YAML frontmatter, then the prompt. Its slug is the file name without .md.
title: Summarize this project
parallelGroup: 1          # lowest group first; default 99 (or an NN- prefix of the file name)
# estimateMinutes: 10
# cwd: ../other-repo      # relative to the project dir; default the project dir
# command: ["claude", "-p", "--output-format", "stream-json", "--verbose"]   # default: config agent.command
# timeouts: { maxDurationMs: 600000, idleOutputMs: 1200000 }
---
Read this project's README and its top-level files, then reply with a short summary of what
the project does and how it is built. Do not change any file.
`;

interface Planned {
  path: string;
  text: string;
  mode: number;
}

/**
 * `warden init [DIR] [--force]`: creates `DIR/.warden/` (0700) with a config and an example job.
 * An existing file is left alone and named, unless `--force`: a second init must never undo
 * a user's edits.
 */
export async function initCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand('init', argv);
  const project = resolve(positionals[0] ?? '.');
  const jobsDir = join(project, CONFIG_DEFAULTS.jobsDir);
  const wardenDir = dirname(configPathOf(project));
  ensureDir(project);
  // Only its owner may write what the scheduler runs; chmod because the umask can only take away.
  if (ensureDir(wardenDir, 0o700)) chmodSync(wardenDir, 0o700);
  ensureDir(jobsDir);

  // The config may come to hold env.set secrets: readable by its owner only.
  const files: Planned[] = [
    { path: configPathOf(project), text: `${JSON.stringify(CONFIG, null, 2)}\n`, mode: 0o600 },
    { path: join(jobsDir, 'example.md'), text: EXAMPLE_JOB, mode: 0o644 },
  ];
  const kept: string[] = [];
  for (const file of files) {
    if (writeFile(file, values.force === true)) process.stdout.write(`wrote ${escapeControls(displayPath(file.path))}\n`);
    else kept.push(displayPath(file.path));
  }
  if (kept.length > 0) process.stdout.write(`left alone, already there (--force overwrites): ${escapeControls(kept.join(', '))}\n`);
  return 0;
}

/** Makes `path` a directory (and its missing parents) if it is not one; true when it made it. */
function ensureDir(path: string, mode = 0o777): boolean {
  try {
    mkdirSync(path, { mode });
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      mkdirSync(path, { recursive: true, mode });
      return true;
    }
    if (code !== 'EEXIST') throw new UsageError(`${path}: cannot create: ${code ?? String(error)}`);
    if (!statSync(path).isDirectory()) throw new UsageError(`${path}: exists and is not a directory`);
    return false;
  }
}

/**
 * Writes a file that is not there (O_EXCL: nor a symlink in its place), or with `force` replaces
 * whatever is there by rename, so a symlink is replaced rather than written through. False when
 * the file exists and was left alone.
 */
function writeFile(file: Planned, force: boolean): boolean {
  const target = force ? `${file.path}.${process.pid}.tmp` : file.path;
  try {
    writeFileSync(target, file.text, { flag: 'wx', mode: file.mode });
    if (force) renameSync(target, file.path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (force) rmSync(target, { force: true });
    if (code === 'EEXIST' && !force) return false;
    throw new UsageError(`${file.path}: cannot write: ${code ?? String(error)}`);
  }
}
