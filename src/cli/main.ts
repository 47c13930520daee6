#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { UsageError, WardenError } from '../errors.js';
import { GROUPS, groupHelpOf, helpOf, mainHelp, type CommandName } from './commandTable.js';
import { warn } from './output.js';
import { stateFileError } from '../store/stateFile.js';
import { displayPath } from './args.js';

// Each command's module is loaded only when it runs: startup is most of a short command's time.
// What each takes, and its help, is the table in commandTable.ts.
const commands: Record<string, (argv: string[]) => Promise<number>> = {
  doctor: async (argv) => (await import('./doctorCommand.js')).doctorCommand(argv),
  exec: async (argv) => (await import('./execCommand.js')).execCommand(argv),
  init: async (argv) => (await import('./initCommand.js')).initCommand(argv),
  kick: async (argv) => (await import('./controlCommand.js')).controlCommand('kick', argv),
  lease: async (argv) => (await import('./leaseCommand.js')).leaseCommand(argv),
  lock: async (argv) => (await import('./lockCommand.js')).lockCommand(argv),
  log: async (argv) => (await import('./logCommand.js')).logCommand(argv),
  pause: async (argv) => (await import('./controlCommand.js')).controlCommand('pause', argv),
  replay: async (argv) => (await import('./replayCommand.js')).replayCommand(argv),
  resume: async (argv) => (await import('./controlCommand.js')).controlCommand('resume', argv),
  run: async (argv) => (await import('./runCommand.js')).runCommand(argv),
  status: async (argv) => (await import('./statusCommand.js')).statusCommand(argv),
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(`${mainHelp()}\n`);
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
    const group = GROUPS[name];
    const sub = group?.subcommands.includes(rest[0] ?? '') ? `${name} ${rest[0]}` : undefined;
    process.stdout.write(`${group && !sub ? groupHelpOf(name) : helpOf((sub ?? name) as CommandName)}\n`);
    return 0;
  }
  return command(rest);
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
