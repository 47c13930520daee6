/** An input waiting for its actor's turn: the record type it will be logged as, and its data. */
export interface Delivery {
  type: string;
  data: unknown;
}

/**
 * One FIFO mailbox per actor, served round-robin: each actor handles one input at a time and in
 * the order it arrived, and an effect that reports back in the middle of a step only queues.
 */
export class Mailboxes {
  private readonly boxes = new Map<string, Delivery[]>();
  private readonly ready: string[] = [];
  // Actors whose actor.started is still queued, so events sent right after start() find them.
  private readonly starting = new Map<string, string>();

  post(actor: string, delivery: Delivery): void {
    let box = this.boxes.get(actor);
    if (!box) {
      box = [];
      this.boxes.set(actor, box);
    }
    if (box.length === 0) this.ready.push(actor);
    box.push(delivery);
    if (delivery.type === 'actor.started') this.starting.set(actor, (delivery.data as { machine: string }).machine);
  }

  /** The next input to handle, or undefined when every mailbox is empty. */
  take(): { actor: string; delivery: Delivery } | undefined {
    const actor = this.ready.shift();
    if (actor === undefined) return undefined;
    const box = this.boxes.get(actor)!;
    const delivery = box.shift()!;
    if (box.length > 0) this.ready.push(actor);
    if (delivery.type === 'actor.started') this.starting.delete(actor);
    return { actor, delivery };
  }

  /** Whether an actor is created but its `actor.started` is not handled yet. */
  has(actor: string): boolean {
    return this.starting.has(actor);
  }

  machineOf(actor: string): string {
    return this.starting.get(actor)!;
  }
}
