import type { EventObject } from 'xstate';
import type { Effect } from '../store/record.js';
import { TIMER_ARM, TIMER_CANCEL, type TimerArmParams } from './step.js';

/** A timer that was armed, and has neither fired nor been cancelled. */
export interface PendingTimer {
  actor: string;
  id: string;
  event: EventObject;
  dueAt: number;
  armedSeq: number;
}

/**
 * The timers a log has armed and not yet fired or cancelled, keyed by actor and timer id.
 * Fed the effects of each record in order, it answers "what is still pending" on resume.
 * Re-arming an id replaces the earlier timer, as xstate's own scheduler does.
 */
export class TimerBook {
  private readonly timers = new Map<string, PendingTimer>();

  /** Applies a record's timer effects; `ts` dates arms that carry no `dueAt`. */
  applyEffects(actor: string, seq: number, ts: string, effects: readonly Effect[]): PendingTimer[] {
    const armed: PendingTimer[] = [];
    for (const effect of effects) {
      if (effect.type === TIMER_CANCEL) {
        this.timers.delete(key(actor, (effect.params as { id: string }).id));
      } else if (effect.type === TIMER_ARM) {
        const params = effect.params as TimerArmParams;
        const timer: PendingTimer = {
          actor,
          id: params.id,
          event: params.event,
          dueAt: params.dueAt ?? Date.parse(ts) + params.delayMs,
          armedSeq: seq,
        };
        this.timers.set(key(actor, params.id), timer);
        armed.push(timer);
      }
    }
    return armed;
  }

  /** Takes a firing off the book; false if that arming is no longer pending (cancelled or re-armed). */
  fire(actor: string, id: string, armedSeq: number): boolean {
    const timer = this.timers.get(key(actor, id));
    if (!timer || timer.armedSeq !== armedSeq) return false;
    this.timers.delete(key(actor, id));
    return true;
  }

  isPending(actor: string, id: string, armedSeq: number): boolean {
    return this.timers.get(key(actor, id))?.armedSeq === armedSeq;
  }

  pending(): PendingTimer[] {
    return [...this.timers.values()].sort((a, b) => a.dueAt - b.dueAt || a.armedSeq - b.armedSeq);
  }
}

function key(actor: string, id: string): string {
  return `${actor}\u0000${id}`;
}
