import { describe, expect, it } from 'vitest';
import { initialTransition, transition } from 'xstate';
import { leaseMachine } from '../../src/machines/lease.machine.js';

const INPUT = { ownerId: 'me', renewEveryMs: 20_000, renewRetryMs: 2_000 };
const actions = (list: ReadonlyArray<{ type: string; params?: unknown }>) =>
  list.map((a) => (a.type === 'xstate.raise' ? `arm ${(a.params as { id: string }).id} +${(a.params as { delay: number }).delay}` : a.type === 'xstate.cancel' ? `cancel ${(a.params as { sendId: string }).sendId}` : a.type)).filter((t) => !t.startsWith('xstate.assign'));

function held() {
  const [idle] = initialTransition(leaseMachine, INPUT);
  return transition(leaseMachine, idle, { type: 'lease.acquired', lockId: 'L1', epoch: 4 });
}

describe('the lease machine', () => {
  it('starts idle and holds once acquired, arming the renewal timer', () => {
    const [idle, entry] = initialTransition(leaseMachine, INPUT);
    expect(idle.value).toBe('idle');
    expect(actions(entry)).toEqual([]);
    const [snapshot, acts] = held();
    expect(snapshot.value).toBe('held');
    expect(snapshot.context).toMatchObject({ lockId: 'L1', epoch: 4, renewals: 0 });
    expect(actions(acts)).toEqual(['arm xstate.after.renewEvery.lease.held +20000']);
  });

  it('renews when the timer fires and goes back to holding, counting the renewal', () => {
    const [h] = held();
    const [renewing, acts] = transition(leaseMachine, h, { type: 'xstate.after.renewEvery.lease.held' } as never);
    expect(renewing.value).toBe('renewing');
    expect(acts.map((a) => [a.type, a.params])).toContainEqual(['renewLease', { lockId: 'L1' }]);
    const [back, again] = transition(leaseMachine, renewing, { type: 'lease.renewed', renewedAt: '2026-11-23T09:00:20.000Z' });
    expect(back.value).toBe('held');
    expect(back.context.renewals).toBe(1);
    expect(actions(again)).toEqual(['arm xstate.after.renewEvery.lease.held +20000']);
  });

  it.each([['lease.renewBusy'], ['effect.failed']])('retries soon after %s', (type) => {
    const [h] = held();
    const [renewing] = transition(leaseMachine, h, { type: 'xstate.after.renewEvery.lease.held' } as never);
    const [pending, acts] = transition(leaseMachine, renewing, { type, effect: 'renewLease', causeSeq: 1, message: 'x' } as never);
    expect(pending.value).toBe('renewPending');
    expect(actions(acts)).toEqual(['arm xstate.after.renewRetry.lease.renewPending +2000']);
    const [renewingAgain] = transition(leaseMachine, pending, { type: 'xstate.after.renewRetry.lease.renewPending' } as never);
    expect(renewingAgain.value).toBe('renewing');
  });

  it.each([['held'], ['renewing'], ['renewPending']])('releases from %s, cancelling what was pending', (from) => {
    let [snapshot] = held();
    if (from !== 'held') [snapshot] = transition(leaseMachine, snapshot, { type: 'xstate.after.renewEvery.lease.held' } as never);
    if (from === 'renewPending') [snapshot] = transition(leaseMachine, snapshot, { type: 'lease.renewBusy' });
    const [released, acts] = transition(leaseMachine, snapshot, { type: 'lease.release', reason: 'done' });
    expect(released.value).toBe('released');
    expect(released.status).toBe('done');
    expect(actions(acts).every((a) => a.startsWith('cancel'))).toBe(true);
  });

  it('ignores a renewal answer that arrives after the release', () => {
    const [h] = held();
    const [released] = transition(leaseMachine, h, { type: 'lease.release', reason: 'done' });
    const [after, acts] = transition(leaseMachine, released, { type: 'lease.renewed', renewedAt: '2026-11-23T09:00:20.000Z' });
    expect(after.value).toBe('released');
    expect(acts).toEqual([]);
  });
});
