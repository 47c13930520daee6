/**
 * The one table of Warden's commands: every flag with its meaning, default and units, the
 * positionals, the exit codes and an example. The parser (cliParse.ts), `--help` and the
 * generated reference in docs/cli.md and README.md (scripts/gen-docs.mjs) all read it, so they
 * cannot drift. Kept free of imports: `warden --help` loads nothing else.
 */

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  /** May be given more than once; the values are collected in order. */
  readonly multiple?: boolean;
  /** The value's placeholder in usage lines: D, T, N, TEXT … */
  readonly value?: string;
  readonly help: string;
  /** What applies when the flag is not given. */
  readonly default?: string;
  /** Checked before the command runs: an existing directory, or an existing regular file. */
  readonly path?: 'dir' | 'file';
  /** A relative path is taken relative to the project dir (`--dir`), not the current directory. */
  readonly inProjectDir?: boolean;
}

export interface PositionalSpec {
  readonly name: string;
  readonly help: string;
  readonly optional?: boolean;
  readonly path?: 'dir' | 'file';
  /** With `path: 'file'`: a missing file is left to the command (`log --follow` waits for it). */
  readonly mayBeMissing?: boolean;
}

export interface CommandSpec {
  readonly summary: string;
  readonly positionals: readonly PositionalSpec[];
  /** The command runs a command: CMD is everything after `--`, which is required. */
  readonly runsCommand?: boolean;
  readonly options: Readonly<Record<string, OptionSpec>>;
  readonly exitCodes: readonly (readonly [number, string])[];
  readonly example: string;
}

const DURATION = 'T: milliseconds, or a number with a unit: 500ms, 90s, 20m, 2h';

const dir = { type: 'string', value: 'D', path: 'dir', help: 'the project dir; its log is D/.warden/events.jsonl; must exist', default: 'the current directory' } as const;
const json = { type: 'boolean', help: 'print JSON (one object per line) instead of text' } as const;
const machines = {
  type: 'string',
  value: 'MODULE',
  path: 'file',
  help: 'a JavaScript module exporting `machines`, machine definitions added to (or replacing, by name) Warden’s own',
  default: 'Warden’s machines only',
} as const;
const tmuxSocket = { type: 'string', value: 'NAME', help: 'the tmux server session probes ask (like tmux -L NAME)', default: 'the config’s tmux.socket, else tmux’s default' } as const;
const lockDir = { ...dir, help: 'the project dir whose .warden/config.json is read (tmux.socket); must exist' } as const;
const worker = { name: 'WORKER', help: 'the worker directory; its lock is WORKER/.runtime/agent.lock; must exist', path: 'dir' } as const;
const cmd = { name: 'CMD…', help: 'the command and its arguments, everything after --' } as const;

const OK = [0, 'success'] as const;
const BAD = [2, 'bad input: an unknown flag, a bad value, a missing directory or file, a malformed log or config (one line on stderr)'] as const;
const HELD = [75, 'held by another live owner (one line naming it)'] as const;
const CMD_EXIT = [
  [0, 'CMD’s own exit code is warden’s (128+N if it died of signal N)'],
  BAD,
  HELD,
  [126, 'CMD is not executable'],
  [127, 'CMD was not found'],
] as const;
const CONTROL_EXIT = [OK, [1, 'the scheduler refused the request'], BAD, [75, 'a scheduler holds the lease but its control socket did not answer']] as const;
const lockPid = { type: 'string', value: 'P', help: 'the owner the lock is taken or judged for: a process id', default: 'the process that ran warden (its parent)' } as const;

export const COMMANDS = {
  run: {
    summary: 'take the lease (or wait for it) and run the queue of job files; --once exits when it is done',
    positionals: [],
    options: {
      dir,
      jobs: { type: 'string', value: 'D', path: 'dir', inProjectDir: true, help: 'the jobs dir, relative to the project dir; must exist', default: 'the config’s jobsDir, else .warden/jobs' },
      once: { type: 'boolean', help: 'exit when nothing is pending or running (0 if every job completed, 1 otherwise)', default: 'run until SIGINT/SIGTERM' },
      'probe-ms': { type: 'string', value: 'N', help: 'while waiting for the lease, how often (milliseconds) to check whether its holder died', default: '1000' },
    },
    exitCodes: [[0, 'with --once: every job completed'], [1, 'with --once: a job did not complete; or the lease was lost'], BAD],
    example: 'warden run --dir ~/project --once',
  },
  status: {
    summary: 'the lease holder, pauses and every job, from the log alone',
    positionals: [],
    options: { dir, json },
    exitCodes: [OK, BAD],
    example: 'warden status --dir ~/project --json',
  },
  pause: {
    summary: 'pause the queue: running jobs go on, nothing new starts',
    positionals: [],
    options: { dir, reason: { type: 'string', value: 'TEXT', help: 'why, shown by status', default: 'none' }, json },
    exitCodes: CONTROL_EXIT,
    example: 'warden pause --reason "deploying"',
  },
  resume: { summary: 'resume a paused queue', positionals: [], options: { dir, json }, exitCodes: CONTROL_EXIT, example: 'warden resume --dir ~/project' },
  kick: {
    summary: 'start what may start now (bypassing an automatic pause once)',
    positionals: [],
    options: { dir, json },
    exitCodes: CONTROL_EXIT,
    example: 'warden kick',
  },
  init: {
    summary: 'create DIR/.warden/ with a config and an example job (never overwrites without --force); the only command that creates a directory',
    positionals: [{ name: 'DIR', help: 'the project dir, created if missing', optional: true }],
    options: { force: { type: 'boolean', help: 'overwrite the config and the example job if they exist', default: 'leave existing files alone' } },
    exitCodes: [OK, BAD],
    example: 'warden init ~/project',
  },
  log: {
    summary: 'the event log, one readable line per event; --follow tails it live',
    positionals: [{ name: 'FILE', help: 'a log file to read instead of D/.warden/events.jsonl (not with --dir)', optional: true, path: 'file', mayBeMissing: true }],
    options: { dir, follow: { type: 'boolean', help: 'after the existing records, print new ones as they are written, until Ctrl-C; waits for a missing file' }, json, machines },
    exitCodes: [OK, BAD],
    example: 'warden log --dir ~/project --follow',
  },
  replay: {
    summary: 'fold the log through the machines; --verify checks every step; --at SEQ shows each actor then',
    positionals: [{ name: 'FILE', help: 'a log file to read instead of D/.warden/events.jsonl (not with --dir)', optional: true, path: 'file' }],
    options: {
      dir,
      verify: { type: 'boolean', help: 'check each record’s state, hash and effects against the machines', default: 'not verified' },
      at: { type: 'string', value: 'SEQ', help: 'stop after record SEQ and show every actor as it was then', default: 'the end of the log' },
      json,
      machines,
    },
    exitCodes: [OK, [1, 'with --verify: the log diverged from the machines'], BAD],
    example: 'warden replay examples/demo-events.jsonl --verify',
  },
  exec: {
    summary: 'run one command as a supervised job: watchdogs, whole-tree kills, a log',
    positionals: [cmd],
    runsCommand: true,
    options: {
      dir: { ...dir, help: 'the project dir: its config is read, the job’s log and meta are written under D/.warden; must exist' },
      cwd: { type: 'string', value: 'C', path: 'dir', help: 'the directory CMD runs in; must exist', default: 'the project dir' },
      slug: { type: 'string', value: 'S', help: 'the job’s name in its log and file names (lowercase letters, digits, ".", "_", "-")', default: 'exec' },
      'max-duration': { type: 'string', value: 'T', help: `kill the job after T in all; ${DURATION}`, default: 'the config’s timeouts, else 2h' },
      idle: { type: 'string', value: 'T', help: `kill the job after T without output; ${DURATION}`, default: 'the config’s timeouts, else 20m' },
      grace: { type: 'string', value: 'T', help: `kill the job T after its result line if it has not exited; ${DURATION}`, default: 'the config’s timeouts, else 90s' },
      'kill-after': { type: 'string', value: 'T', help: `after SIGTERM, SIGKILL the job’s processes T later; ${DURATION}`, default: 'the config’s timeouts, else 30s' },
      'prompt-file': { type: 'string', value: 'F', path: 'file', help: 'the prompt, a regular file (copied into the run’s dir; never in the log), given to CMD as --prompt-via says', default: 'no prompt' },
      'prompt-via': {
        type: 'string',
        value: 'stdin|file|argv',
        help: 'how CMD gets the prompt: on stdin; as a file named by $WARDEN_PROMPT_FILE; or in place of {prompt} in CMD’s arguments (at most 100 KiB)',
        default: 'argv if CMD has {prompt}, else stdin',
      },
      json: { type: 'boolean', help: 'print the job’s meta record as one JSON line at the end' },
    },
    exitCodes: [[0, 'completed (a kill after a successful result included)'], [1, 'failed or interrupted'], BAD, [75, 'deferred: rate limited']],
    example: 'warden exec --idle 5m --prompt-file task.md -- claude -p --output-format stream-json --verbose',
  },
  'lease run': {
    summary: 'run CMD while holding the project lease, like flock(1)',
    positionals: [cmd],
    runsCommand: true,
    options: {
      dir,
      id: { type: 'string', value: 'ID', help: 'the owner key: the same key re-acquires after a restart', default: '<hostname>:<pid>' },
      wait: { type: 'boolean', help: 'wait for the lease instead of exiting 75', default: 'exit 75 if held' },
      'probe-ms': { type: 'string', value: 'N', help: 'while waiting, how often (milliseconds) to check whether the holder died', default: '1000' },
      'ttl-ms': { type: 'string', value: 'N', help: 'how long (milliseconds) this holder’s lock counts as live on other hosts without a renewal (it renews every third)', default: '60000' },
      'grace-ms': { type: 'string', value: 'N', help: 'how long (milliseconds) an unreadable lock counts as held', default: '10000' },
    },
    exitCodes: CMD_EXIT,
    example: 'warden lease run --wait -- ./deploy.sh',
  },
  'lease status': {
    summary: 'who holds the project lease and whether that owner is alive',
    positionals: [],
    options: { dir, json },
    exitCodes: [OK, BAD],
    example: 'warden lease status --json',
  },
  'lock acquire': {
    summary: 'take WORKER’s identity lock for an owner; a stale lock is taken over',
    positionals: [worker],
    options: {
      pid: lockPid,
      session: { type: 'string', value: 'S', help: 'the session id recorded in the lock (a tmux session name or id is probed)', default: 'none' },
      json,
      dir: lockDir,
      'tmux-socket': tmuxSocket,
    },
    exitCodes: [OK, BAD, HELD],
    example: 'warden lock acquire ./polecats/ace --session ace',
  },
  'lock release': {
    summary: 'release WORKER’s identity lock: only the owner’s, unless --force',
    positionals: [worker],
    options: {
      pid: lockPid,
      force: { type: 'boolean', help: 'remove the lock whoever holds it (an unreadable one is moved aside)', default: 'the owner’s lock only' },
      json,
      dir: lockDir,
      'tmux-socket': tmuxSocket,
    },
    exitCodes: [OK, [1, 'the lock is not the owner’s'], BAD],
    example: 'warden lock release ./polecats/ace',
  },
  'lock status': {
    summary: 'WORKER’s lock in gastown’s strings: unlocked, stale (dead PID N), locked (by us), locked by PID N (session: S)',
    positionals: [worker],
    options: { pid: lockPid, json, dir: lockDir, 'tmux-socket': tmuxSocket },
    exitCodes: [OK, BAD],
    example: 'warden lock status ./polecats/ace --json',
  },
  'lock check': {
    summary: 'whether WORKER is free for the owner; a stale lock is cleaned',
    positionals: [worker],
    options: { pid: lockPid, json, dir: lockDir, 'tmux-socket': tmuxSocket },
    exitCodes: [OK, BAD, HELD],
    example: 'warden lock check ./polecats/ace',
  },
  'lock run': {
    summary: 'run CMD while holding WORKER’s identity lock, like flock(1); the owner is this warden process',
    positionals: [worker, cmd],
    runsCommand: true,
    options: {
      session: { type: 'string', value: 'S', help: 'the session id recorded in the lock; CMD gets it as WARDEN_WORKER_SESSION', default: 'none' },
      wait: { type: 'boolean', help: 'wait for the lock instead of exiting 75', default: 'exit 75 if held' },
      'probe-ms': { type: 'string', value: 'N', help: 'while waiting, how often (milliseconds) to check whether the holder died', default: '1000' },
      dir: lockDir,
      'tmux-socket': tmuxSocket,
    },
    exitCodes: CMD_EXIT,
    example: 'warden lock run ./polecats/ace --session ace -- claude -p "fix the login page"',
  },
  doctor: {
    summary: 'find every worker lock under ROOT: live, stale, orphaned, foreign, unreadable; --fix removes stale ones',
    positionals: [{ name: 'ROOT', help: 'where to look for worker locks; must exist', optional: true, path: 'dir' }],
    options: {
      fix: { type: 'boolean', help: 'remove stale locks, each re-judged under its lock first', default: 'report only' },
      json,
      'tmux-socket': tmuxSocket,
      'probe-timeout-ms': { type: 'string', value: 'N', help: 'how long (milliseconds) a session probe may take', default: '5000' },
      skip: { type: 'string', multiple: true, value: 'NAME', help: 'a directory name not to descend into (repeatable), besides the default ones' },
      'no-default-skips': { type: 'boolean', help: 'descend into .git, node_modules and the other directories skipped by default', default: 'skip them' },
      dir: lockDir,
    },
    exitCodes: [[0, 'no findings'], [1, 'findings'], BAD],
    example: 'warden doctor ~/town --fix',
  },
} as const satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof COMMANDS;

/** Commands with subcommands (`warden lease run`): their summaries. */
export const GROUPS: Readonly<Record<string, { summary: string; subcommands: readonly string[] }>> = {
  lease: { summary: 'the project’s scheduler lease: run CMD while holding it, or show who holds it', subcommands: ['run', 'status'] },
  lock: {
    summary: 'a worker’s identity lock (gastown-compatible WORKER/.runtime/agent.lock); run CMD while holding it',
    subcommands: ['acquire', 'release', 'status', 'check', 'run'],
  },
};

/** The top-level commands in the order `warden --help` lists them. */
export const TOP_LEVEL = ['run', 'status', 'pause', 'resume', 'kick', 'init', 'log', 'replay', 'exec', 'lease', 'lock', 'doctor'] as const;

/** `warden lease run [--dir D] … -- CMD…` */
export function usageOf(name: CommandName): string {
  const spec: CommandSpec = COMMANDS[name];
  const parts = [`warden ${name}`];
  for (const p of spec.positionals) if (!spec.runsCommand || p.name !== 'CMD…') parts.push(p.optional ? `[${p.name}]` : p.name);
  for (const [flag, o] of Object.entries(spec.options)) parts.push(`[--${flag}${o.value ? ` ${o.value}` : ''}]${o.multiple ? '…' : ''}`);
  if (spec.runsCommand) parts.push('-- CMD…');
  return parts.join(' ');
}

/** `warden <command> --help`: every flag with its meaning and default, the exit codes and an example. */
export function helpOf(name: CommandName): string {
  const spec: CommandSpec = COMMANDS[name];
  const lines = [`usage: ${usageOf(name)}`, '', spec.summary];
  const label = (flag: string, o: OptionSpec) => `--${flag}${o.value ? ` ${o.value}` : ''}`;
  const width = Math.max(10, ...spec.positionals.map((p) => p.name.length), ...Object.entries(spec.options).map(([f, o]) => label(f, o).length)) + 2;
  if (spec.positionals.length > 0) {
    lines.push('', 'arguments:');
    for (const p of spec.positionals) lines.push(`  ${p.name.padEnd(width)} ${p.help}${p.optional ? ' (optional)' : ''}`);
  }
  lines.push('', 'options:');
  for (const [flag, o] of Object.entries(spec.options)) {
    lines.push(`  ${label(flag, o).padEnd(width)} ${o.help}${o.default ? ` (default: ${o.default})` : ''}`);
  }
  lines.push(`  ${'-h, --help'.padEnd(width)} show this help`);
  if (spec.runsCommand) lines.push('', 'CMD is everything after --; warden’s own options go before it.');
  lines.push('', 'exit codes:');
  for (const [code, meaning] of spec.exitCodes) lines.push(`  ${String(code).padEnd(4)} ${meaning}`);
  lines.push('', 'example:', `  ${spec.example}`);
  return lines.join('\n');
}

/** `warden lease --help`: the subcommands, each with its usage. */
export function groupHelpOf(group: string): string {
  const g = GROUPS[group]!;
  const lines = [`usage: warden ${group} ${g.subcommands.join('|')} …`, '', g.summary, '', 'subcommands (each takes --help):'];
  for (const sub of g.subcommands) {
    const name = `${group} ${sub}` as CommandName;
    lines.push(`  ${sub.padEnd(8)} ${COMMANDS[name].summary}`, `           ${usageOf(name)}`);
  }
  return lines.join('\n');
}

/** `warden --help`. */
export function mainHelp(): string {
  const lines = ['usage: warden <command> [options]   (warden <command> --help for its flags, exit codes and an example)', '', 'commands:'];
  for (const name of TOP_LEVEL) {
    const summary = name in GROUPS ? GROUPS[name]!.summary : COMMANDS[name as CommandName].summary;
    const usage = name in GROUPS ? GROUPS[name]!.subcommands.map((s) => `warden ${name} ${s} …`).join(' | ') : usageOf(name as CommandName);
    lines.push(`  ${name.padEnd(8)} ${summary}`, `           ${usage}`);
  }
  lines.push('', 'exit codes: 0 ok, 1 the work (or a verification) failed, 2 bad input, 75 held by another live owner;');
  lines.push('            commands that run CMD exit with its code (126 not executable, 127 not found)');
  return lines.join('\n');
}
