#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { UsageError, WardenError } from '../errors.js';
import { warn } from './output.js';
import { stateFileError } from '../store/stateFile.js';
import { displayPath } from './args.js';

// Each command's module is loaded only when it runs: startup is most of a short command's time.
const commands: Record<string, { run: (argv: string[]) => Promise<number>; usage: string; summary: string }> = {
  doctor: {
    run: async (argv) => (await import('./doctorCommand.js')).doctorCommand(argv),
    usage: 'warden doctor [ROOT] [--fix] [--json] [--tmux-socket NAME] [--probe-timeout-ms N] [--skip NAME]… [--no-default-skips] [--dir D]',
    summary: 'find every worker lock under ROOT: live, stale, orphaned, foreign, unreadable; --fix removes stale ones',
  },
  exec: {
    run: async (argv) => (await import('./execCommand.js')).execCommand(argv),
    usage:
      'warden exec [--dir D] [--cwd C] [--slug S] [--max-duration T] [--idle T] [--grace T] [--kill-after T] [--prompt-file F] [--prompt-via stdin|file|argv] [--json] -- CMD…',
    summary: 'run one command as a supervised job: watchdogs, whole-tree kills, a log; exit 0 completed, 1 failed, 75 deferred',
  },
  init: {
    run: async (argv) => (await import('./initCommand.js')).initCommand(argv),
    usage: 'warden init [DIR] [--force]',
    summary: 'create DIR/.warden/ with a config and an example job (never overwrites without --force)',
  },
  kick: {
    run: async (argv) => (await import('./controlCommand.js')).controlCommand('kick', argv),
    usage: 'warden kick [--dir D] [--json]',
    summary: 'start what may start now (bypassing an automatic pause once)',
  },
  lease: {
    run: async (argv) => (await import('./leaseCommand.js')).leaseCommand(argv),
    usage:
      'warden lease run [--dir D] [--id ID] [--wait] [--probe-ms N] [--ttl-ms N] [--grace-ms N] -- CMD… | warden lease status [--dir D] [--json]',
    summary: 'run CMD while holding the project lease (like flock); or show who holds it',
  },
  lock: {
    run: async (argv) => (await import('./lockCommand.js')).lockCommand(argv),
    usage:
      'warden lock acquire|release|status|check WORKER [--pid P] [--session S] [--force] [--json] [--tmux-socket NAME] | warden lock run WORKER [--session S] [--wait] [--probe-ms N] -- CMD…',
    summary: "a worker's identity lock (gastown-compatible .runtime/agent.lock); run CMD while holding it (like flock)",
  },
  log: {
    run: async (argv) => (await import('./logCommand.js')).logCommand(argv),
    usage: 'warden log [--dir D | FILE] [--follow] [--json] [--machines MODULE]',
    summary: 'the event log, one readable line per event; --follow tails it live',
  },
  pause: {
    run: async (argv) => (await import('./controlCommand.js')).controlCommand('pause', argv),
    usage: 'warden pause [--dir D] [--reason TEXT] [--json]',
    summary: 'pause the queue: running jobs go on, nothing new starts',
  },
  replay: {
    run: async (argv) => (await import('./replayCommand.js')).replayCommand(argv),
    usage: 'warden replay [--dir D | FILE] [--verify] [--at SEQ] [--json] [--machines MODULE]',
    summary: 'fold the log through the machines; --verify checks every step; --at SEQ shows each actor then',
  },
  resume: {
    run: async (argv) => (await import('./controlCommand.js')).controlCommand('resume', argv),
    usage: 'warden resume [--dir D] [--json]',
    summary: 'resume a paused queue',
  },
  run: {
    run: async (argv) => (await import('./runCommand.js')).runCommand(argv),
    usage: 'warden run [--dir D] [--jobs D] [--once] [--probe-ms N]',
    summary: 'take the lease (or wait for it) and run the queue of job files; --once exits when it is done',
  },
  status: {
    run: async (argv) => (await import('./statusCommand.js')).statusCommand(argv),
    usage: 'warden status [--dir D] [--json]',
    summary: 'the lease holder, pauses and every job, from the log alone',
  },
};

function help(): string {
  const lines = ['usage: warden <command> [options]', '', 'commands:'];
  for (const [name, command] of Object.entries(commands)) lines.push(`  ${name.padEnd(8)} ${command.summary}`, `           ${command.usage}`);
  lines.push('', 'exit codes: 0 ok, 1 the work (or a verification) failed, 2 bad input, 75 held by another live owner');
  return lines.join('\n');
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(`${help()}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = commands[name];
  if (!command) throw new UsageError(`unknown command "${name}" (see warden --help)`);
  const options = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
  if (options.includes('--help') || options.includes('-h')) {
    process.stdout.write(`usage: ${command.usage}\n${command.summary}\n`);
    return 0;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof WardenError) {
      warn(error.message.replace(/\s*\n\s*/g, ' '));
      process.exitCode = error.exitCode;
      return;
    }
    // A file this user may not touch (another uid's project) is bad input, whoever met it: name it.
    const errno = error as NodeJS.ErrnoException;
    if ((errno?.code === 'EACCES' || errno?.code === 'EPERM') && typeof errno.path === 'string') {
      warn(stateFileError(displayPath(errno.path), error).message);
      process.exitCode = 2;
      return;
    }
    const message = error instanceof Error ? error.message : String(error);
    warn(`internal error: ${message.split('\n')[0]}${process.env.WARDEN_DEBUG ? '' : ' (set WARDEN_DEBUG=1 for the stack)'}`);
    if (process.env.WARDEN_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    process.exitCode = 1;
  },
);
