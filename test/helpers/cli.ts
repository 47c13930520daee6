import { join } from 'node:path';
import { execa, type Options } from 'execa';

/** The compiled CLI, as a user runs it (`npm test` builds first). */
export const CLI = join(import.meta.dirname, '../../dist/cli/main.js');

export async function warden(args: string[], options: Options = {}) {
  const result = await execa('node', [CLI, ...args], { reject: false, ...options });
  return { code: result.exitCode, stdout: String(result.stdout), stderr: String(result.stderr) };
}
