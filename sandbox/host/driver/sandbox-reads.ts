import type { ConversationId } from '../../../src/contracts/conversation/id.js';
import { DEFAULT_READ_BUDGET, type ReadBudget } from './archive-read.js';

/**
 * The reads of sandboxes' files in flight (snapshots, outbox, delegation copies), each within the
 * budget, and with one abort switch per sandbox: stopping, killing or removing a sandbox cuts its
 * reads at once, and the worker's stop (`close`) cuts every read, now and later, so neither ever
 * waits on one.
 */
export class SandboxReads {
  private readonly open = new Map<ConversationId, { controller: AbortController; users: number }>();
  private readonly closing = new AbortController();

  constructor(private readonly budget: Omit<ReadBudget, 'signal'> = DEFAULT_READ_BUDGET) {}

  async run<T>(conversation: ConversationId, read: (budget: ReadBudget) => Promise<T>): Promise<T> {
    let entry = this.open.get(conversation);
    if (!entry) {
      entry = { controller: new AbortController(), users: 0 };
      this.open.set(conversation, entry);
    }
    entry.users += 1;
    try {
      return await read({
        ...this.budget,
        signal: AbortSignal.any([entry.controller.signal, this.closing.signal]),
      });
    } finally {
      entry.users -= 1;
      if (entry.users === 0 && this.open.get(conversation) === entry) this.open.delete(conversation);
    }
  }

  /** Cuts the sandbox's reads in flight (later ones run again). */
  abort(conversation: ConversationId): void {
    const entry = this.open.get(conversation);
    this.open.delete(conversation);
    entry?.controller.abort();
  }

  /** Cuts every read, now and from now on. */
  close(): void {
    this.closing.abort();
  }
}
