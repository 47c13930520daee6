import { z } from 'zod';

/**
 * The supervisor (actor `supervisor`): every `intervalMs` it asks which running jobs have been
 * quiet for `staleMs`, and runs a probe command for each (at most `maxConcurrentProbes` at once,
 * never two for one job) that answers a verdict; a kill it asks for is checked before it is done.
 */

const actorId = z.string().min(1);

export const verdictSchema = z.strictObject({
  verdict: z.enum(['ok', 'stuck']),
  action: z.enum(['none', 'kill-descendant', 'kill-job']),
  targetPid: z.number().int().positive().nullable().optional(),
  reason: z.string(),
});
export type ProbeVerdict = z.infer<typeof verdictSchema>;

export const supervisorEvents = {
  'supervisor.configure': z
    .strictObject({
      intervalMs: z.number().int().positive(),
      staleMs: z.number().int().positive(),
      timeoutMs: z.number().int().positive(),
      maxConcurrentProbes: z.number().int().positive(),
    })
    .describe('A scheduler run starts supervising with these settings.'),
  'supervisor.stale': z
    .strictObject({ jobs: z.array(z.strictObject({ actor: actorId, slug: z.string(), jobId: z.string(), lastOutputAt: z.iso.datetime().nullable() })) })
    .describe('The running jobs whose last output is older than staleMs (none already being probed).'),
  'supervisor.answered': z
    .strictObject({ actor: actorId, slug: z.string(), jobId: z.string(), verdict: verdictSchema, tookMs: z.number().int().nonnegative() })
    .describe("A probe's verdict on a job."),
  'supervisor.probeFailed': z
    .strictObject({ actor: actorId, slug: z.string(), reason: z.string() })
    .describe('A probe timed out (and was killed), failed, or answered something that is not a verdict: logged, nothing else changes.'),
  'supervisor.killed': z
    .strictObject({ actor: actorId, slug: z.string(), targetPid: z.number().int().positive(), descendants: z.array(z.number().int().positive()) })
    .describe('A stuck descendant of a job was killed (with what it started); the job goes on.'),
  'supervisor.refused': z
    .strictObject({ actor: actorId, slug: z.string(), targetPid: z.number().nullable(), reason: z.string() })
    .describe('A kill the probe asked for was refused: its target is not a descendant of that job.'),
  'supervisor.stop': z.strictObject({ reason: z.string() }).describe('The scheduler stops supervising.'),
} as const;

export type SupervisorEvent =
  | ({ type: 'supervisor.configure' } & z.infer<(typeof supervisorEvents)['supervisor.configure']>)
  | ({ type: 'supervisor.stale' } & z.infer<(typeof supervisorEvents)['supervisor.stale']>)
  | ({ type: 'supervisor.answered' } & z.infer<(typeof supervisorEvents)['supervisor.answered']>)
  | ({ type: 'supervisor.probeFailed' } & z.infer<(typeof supervisorEvents)['supervisor.probeFailed']>)
  | ({ type: 'supervisor.killed' } & z.infer<(typeof supervisorEvents)['supervisor.killed']>)
  | ({ type: 'supervisor.refused' } & z.infer<(typeof supervisorEvents)['supervisor.refused']>)
  | ({ type: 'supervisor.stop' } & z.infer<(typeof supervisorEvents)['supervisor.stop']>)
  | { type: 'effect.failed'; effect: string; causeSeq: number; message: string };

export const supervisorInputSchema = z.strictObject({});
export type SupervisorInput = z.infer<typeof supervisorInputSchema>;
