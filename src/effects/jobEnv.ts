/**
 * A job's environment: Warden's own, inherited, minus Warden's variables (but for the hold tags,
 * `WARDEN_HOLD_*`) and a deny list, plus the job's additions and its `WARDEN_JOB_ID`.
 *
 * The default deny list removes credentials an agent working in a repository has no use for
 * (cloud, package-registry and deploy secrets), and keeps what agents themselves run on: their
 * API keys and OAuth tokens (`ANTHROPIC_*`, `CLAUDE_*`, `OPENAI_*`, …) and git hosting tokens
 * (`GITHUB_TOKEN`, `GH_TOKEN`, `GITLAB_TOKEN`), which `allow` lists even where a deny pattern
 * would match them. Both lists are patterns: a name, or a name with `*` wildcards.
 */

export const DEFAULT_ENV_DENY: readonly string[] = [
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AZURE_CLIENT_SECRET',
  'GOOGLE_APPLICATION_CREDENTIALS',
  'NPM_TOKEN',
  'NODE_AUTH_TOKEN',
  'PYPI_TOKEN',
  'TWINE_PASSWORD',
  'DOCKER_PASSWORD',
  'VAULT_TOKEN',
  'SSH_AUTH_SOCK',
  '*_PASSWORD',
  '*_SECRET',
  '*_SECRET_KEY',
  '*_PRIVATE_KEY',
];

export const DEFAULT_ENV_ALLOW: readonly string[] = [
  'ANTHROPIC_*',
  'CLAUDE_*',
  'OPENAI_*',
  'GEMINI_API_KEY',
  'GOOGLE_API_KEY',
  'GITHUB_TOKEN',
  'GH_TOKEN',
  'GITLAB_TOKEN',
];

export interface JobEnvOptions {
  /** Variables removed (patterns; default {@link DEFAULT_ENV_DENY}). */
  deny?: readonly string[];
  /** Variables kept even if a deny pattern matches (default {@link DEFAULT_ENV_ALLOW}). */
  allow?: readonly string[];
  /** Variables set for the job, after the filtering. */
  set?: Readonly<Record<string, string>>;
}

/**
 * The environment for job `jobId`, from `base` (Warden's own environment by default).
 * @example jobEnvironment('j-1', { set: { CI: '1' } }).WARDEN_JOB_ID // 'j-1'
 */
export function jobEnvironment(jobId: string, options: JobEnvOptions = {}, base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const deny = (options.deny ?? DEFAULT_ENV_DENY).map(patternOf);
  const allow = (options.allow ?? DEFAULT_ENV_ALLOW).map(patternOf);
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(base)) {
    if (value === undefined) continue;
    // Warden's own variables describe Warden's process (its lease, its job if nested): never passed
    // on — except the tags of the holds it runs under (WARDEN_HOLD_*): an agent started under a
    // `lease run` is part of that holding, and the next holder finds it by its tag.
    if (name.startsWith('WARDEN_') && !name.startsWith('WARDEN_HOLD_')) continue;
    if (deny.some((d) => d.test(name)) && !allow.some((a) => a.test(name))) continue;
    env[name] = value;
  }
  Object.assign(env, options.set ?? {});
  env.WARDEN_JOB_ID = jobId;
  return env;
}

function patternOf(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map(escape).join('.*')}$`);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
