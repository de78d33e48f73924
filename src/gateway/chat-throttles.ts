import type { Redis } from 'ioredis';

/**
 * One notice per key and window, across every gateway (Redis `SET NX` with an expiry): someone refused
 * is told once, not once per message.
 */
export class NoticeThrottle {
  constructor(private readonly redis: Redis) {}

  /** True for the first call per `key` in `windowSeconds`; false until the window has passed. */
  async first(key: string, windowSeconds: number): Promise<boolean> {
    return (await this.redis.set(key, '1', 'EX', windowSeconds, 'NX')) !== null;
  }
}

/**
 * Paces the edits of one thing per key (a turn's progress message) to at most one per interval: an
 * edit held back runs once the interval has passed, and shows the latest state, so later ones join it.
 * In memory: each gateway paces the edits it makes.
 */
export class EditPacer {
  private readonly pending = new Map<string, NodeJS.Timeout>();

  constructor(readonly intervalMs: number) {}

  /** How long until the next edit may go, given the last one's time; ≤ 0 means now. */
  waitAfter(lastEditAt: number, now = Date.now()): number {
    return lastEditAt + this.intervalMs - now;
  }

  /** Runs `edit` after `waitMs`, unless an edit of `key` is pending already (that one shows the latest). */
  defer(key: string, waitMs: number, edit: () => void): void {
    if (this.pending.has(key)) return;
    const timer = setTimeout(
      () => {
        this.pending.delete(key);
        edit();
      },
      Math.max(0, waitMs),
    );
    timer.unref();
    this.pending.set(key, timer);
  }

  /** Drops the pending edit of `key` (the caller makes the final one itself). */
  cancel(key: string): void {
    clearTimeout(this.pending.get(key));
    this.pending.delete(key);
  }

  /** Drops every pending edit (the adapter is stopping). */
  stop(): void {
    for (const timer of this.pending.values()) clearTimeout(timer);
    this.pending.clear();
  }
}

/** The rate limits chat adapters share. */
export interface ChatThrottles {
  notices: NoticeThrottle;
  /** A pacer for one adapter's progress edits, at its platform's rate. */
  editPacer(intervalMs: number): EditPacer;
}
