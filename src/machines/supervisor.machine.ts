import { assign, enqueueActions, setup } from 'xstate';
import { supervisorEvents, supervisorInputSchema, type SupervisorEvent, type SupervisorInput } from '../store/events/supervisor.events.js';
import { defineMachine } from './definition.js';

export interface SupervisorContext {
  settings: { intervalMs: number; staleMs: number; timeoutMs: number; maxConcurrentProbes: number } | null;
  /** Jobs being probed now, by job actor: never two probes for one job. */
  probing: Record<string, { slug: string }>;
  probes: number;
  kills: number;
  refusals: number;
  failures: number;
}

interface SupervisorEffects {
  findStale: { staleMs: number; exclude: string[] };
  runProbe: { actor: string; slug: string; jobId: string; timeoutMs: number };
  killDescendant: { actor: string; slug: string; jobId: string; targetPid: number | null; reason: string };
  cancelJob: { actor: string; reason: string };
}
function effect<K extends keyof SupervisorEffects>(type: K, params: SupervisorEffects[K]): never {
  return { type, params } as never;
}

/**
 * The supervisor's loop: every `intervalMs`, `findStale` (an effect: it knows when each job last
 * wrote) reports the running jobs quiet for `staleMs`; each gets a probe while fewer than
 * `maxConcurrentProbes` run and none runs for it already. A probe's effect is bounded by
 * `timeoutMs` (it kills the probe), so a hung probe frees its slot and the next interval probes
 * again. A `kill-job` verdict cancels the job (its kill stages follow); `kill-descendant` goes to
 * an effect that kills the target only if it is a descendant of that job, and refuses otherwise.
 */
export const supervisorMachine = setup({
  types: { input: {} as SupervisorInput, context: {} as SupervisorContext, events: {} as SupervisorEvent },
  actions: {
    configure: assign(({ event }) => (event.type === 'supervisor.configure' ? { settings: { intervalMs: event.intervalMs, staleMs: event.staleMs, timeoutMs: event.timeoutMs, maxConcurrentProbes: event.maxConcurrentProbes }, probing: {} } : {})),
    lookForStale: enqueueActions(({ context, enqueue }) => {
      if (!context.settings) return;
      if (Object.keys(context.probing).length >= context.settings.maxConcurrentProbes) return;
      enqueue(effect('findStale', { staleMs: context.settings.staleMs, exclude: Object.keys(context.probing) }));
    }),
    startProbes: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'supervisor.stale' || !context.settings) return;
      const probing = { ...context.probing };
      let started = 0;
      for (const job of event.jobs) {
        if (Object.keys(probing).length >= context.settings.maxConcurrentProbes) break;
        if (probing[job.actor]) continue;
        probing[job.actor] = { slug: job.slug };
        started++;
        enqueue(effect('runProbe', { actor: job.actor, slug: job.slug, jobId: job.jobId, timeoutMs: context.settings.timeoutMs }));
      }
      enqueue.assign({ probing, probes: context.probes + started });
    }),
    answered: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'supervisor.answered') return;
      const { [event.actor]: _done, ...probing } = context.probing;
      enqueue.assign({ probing });
      const v = event.verdict;
      if (v.verdict !== 'stuck') return;
      if (v.action === 'kill-job') enqueue(effect('cancelJob', { actor: event.actor, reason: `supervisor: stuck: ${v.reason}` }));
      else if (v.action === 'kill-descendant') enqueue(effect('killDescendant', { actor: event.actor, slug: event.slug, jobId: event.jobId, targetPid: v.targetPid ?? null, reason: v.reason }));
    }),
    probeFailed: assign(({ context, event }) => {
      if (event.type !== 'supervisor.probeFailed') return {};
      const { [event.actor]: _done, ...probing } = context.probing;
      return { probing, failures: context.failures + 1 };
    }),
    countKill: assign(({ context }) => ({ kills: context.kills + 1 })),
    countRefusal: assign(({ context }) => ({ refusals: context.refusals + 1 })),
    // Declarations only: the runner maps these to effects.
    findStale: (_, _params: SupervisorEffects['findStale']) => {},
    runProbe: (_, _params: SupervisorEffects['runProbe']) => {},
    killDescendant: (_, _params: SupervisorEffects['killDescendant']) => {},
    cancelJob: (_, _params: SupervisorEffects['cancelJob']) => {},
  },
  delays: { supervisorInterval: ({ context }) => context.settings?.intervalMs ?? 60_000 },
}).createMachine({
  id: 'supervisor',
  context: () => ({ settings: null, probing: {}, probes: 0, kills: 0, refusals: 0, failures: 0 }),
  initial: 'off',
  on: {
    // A new run: probes an earlier run had going died with it.
    'supervisor.configure': { target: '.watching', reenter: true, actions: 'configure' },
    'supervisor.stop': { target: '.off', actions: assign({ probing: () => ({}) }) },
    'supervisor.answered': { actions: 'answered' },
    'supervisor.probeFailed': { actions: 'probeFailed' },
    'supervisor.killed': { actions: 'countKill' },
    'supervisor.refused': { actions: 'countRefusal' },
    'supervisor.stale': { actions: 'startProbes' },
  },
  states: {
    off: {},
    watching: {
      after: { supervisorInterval: { target: 'watching', reenter: true, actions: 'lookForStale' } },
    },
  },
});

export const supervisorDefinition = defineMachine({
  name: 'supervisor',
  machine: supervisorMachine,
  input: supervisorInputSchema,
  events: supervisorEvents,
});
