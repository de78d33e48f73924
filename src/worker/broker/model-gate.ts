import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { modelGateKeys } from '../../contracts/redis/keys.js';
import { MODEL_GATE_ACQUIRE, MODEL_GATE_LEAVE, MODEL_GATE_RENEW } from '../../contracts/redis/scripts.js';
import { ModelBrokerError } from './errors.js';

/**
 * Fair use of one model server (SANDBOT_MODEL_CONCURRENCY): at most `max` requests at once across all
 * workers, the rest in line in order of arrival. Slots and places in line are leases in Redis, renewed
 * while held, so a worker that dies frees its slot after one lease, not never.
 */

export interface ModelGateOptions {
  redis: Redis;
  instance: string;
  /** The model server's URL: what is shared, so what the slots are counted by. */
  serverUrl: string;
  max: number;
  /** How long a slot or a place in line outlives its holder's last renewal. */
  leaseMs: number;
  /** How often a request in line asks again (default: a tenth of the lease, at most 200 ms). */
  pollMs?: number;
}

/** A held slot: renewed until released. */
export interface ModelSlot {
  release(): Promise<void>;
}

export interface AcquireOptions {
  /** Stops waiting (the turn was stopped): the place in line is given up, `cancelled` is thrown. */
  signal?: AbortSignal;
  /** Called once, when the request has to wait, with how many are ahead of it in line. */
  onWait?: (ahead: number) => void;
}

export class ModelGate {
  private readonly keys: ReturnType<typeof modelGateKeys>;
  private readonly pollMs: number;

  constructor(private readonly options: ModelGateOptions) {
    this.keys = modelGateKeys(options.instance, options.serverUrl.replace(/\/+$/, ''));
    this.pollMs = options.pollMs ?? Math.min(200, Math.max(10, Math.floor(options.leaseMs / 10)));
  }

  /** Waits for a slot, in line; resolves holding it. */
  async acquire({ signal, onWait }: AcquireOptions = {}): Promise<ModelSlot> {
    const ticket = randomUUID();
    let told = false;
    try {
      for (;;) {
        throwIfCancelled(signal);
        const [granted, ahead] = await this.ask(ticket);
        if (granted === 1) return this.hold(ticket);
        if (!told) onWait?.(ahead);
        told = true;
        await pause(this.pollMs, signal);
      }
    } catch (error) {
      await this.leave(ticket).catch(() => undefined);
      throw error;
    }
  }

  private async ask(ticket: string): Promise<[number, number]> {
    const { holders, queue, waiters, seq } = this.keys;
    const { max, leaseMs } = this.options;
    try {
      const answer = (await this.options.redis.eval(
        MODEL_GATE_ACQUIRE,
        4,
        ...[holders, queue, waiters, seq, ticket, max, leaseMs],
      )) as [number, number];
      return [Number(answer[0]), Number(answer[1])];
    } catch (error) {
      const words = error instanceof Error ? error.message : String(error);
      throw new ModelBrokerError(
        'unreachable',
        `cannot take a turn at the model server: Redis failed (${words})`,
        {
          cause: error,
        },
      );
    }
  }

  private hold(ticket: string): ModelSlot {
    const { redis, leaseMs } = this.options;
    const renew = () =>
      void redis.eval(MODEL_GATE_RENEW, 1, this.keys.holders, ticket, leaseMs).catch(() => undefined);
    // Renewed three times a lease: a missed renewal or two (a slow Redis round trip) loses nothing.
    const timer = setInterval(renew, Math.max(10, Math.floor(leaseMs / 3)));
    timer.unref();
    return {
      release: async () => {
        clearInterval(timer);
        await this.leave(ticket);
      },
    };
  }

  private async leave(ticket: string): Promise<void> {
    const { holders, queue, waiters } = this.keys;
    await this.options.redis.eval(MODEL_GATE_LEAVE, 3, holders, queue, waiters, ticket);
  }
}

function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new ModelBrokerError('cancelled', 'the model request was cancelled while waiting for the model');
  }
}

/** Sleeps `ms`, ending early (without throwing) when `signal` aborts: the loop then says so. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
