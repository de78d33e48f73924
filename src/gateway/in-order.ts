/**
 * Runs work one after another per key (a conversation, a channel) and keys side by side: lookups and
 * downloads take varying time, and without this a quick second message could overtake the first.
 */
export class InOrder {
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `work` once every earlier work of `key` has settled; settles as `work` does. */
  async run(key: string, work: () => Promise<void>): Promise<void> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const current = previous.catch(() => undefined).then(work);
    this.tails.set(key, current);
    try {
      await current;
    } finally {
      if (this.tails.get(key) === current) this.tails.delete(key);
    }
  }
}
