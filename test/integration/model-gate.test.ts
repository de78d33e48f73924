import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelBrokerError } from '../../src/worker/broker/errors.js';
import { ModelGate, type ModelSlot } from '../../src/worker/broker/model-gate.js';
import { dropInstanceKeys, REDIS_URL, testInstance } from '../../testkit/redis.js';

/**
 * The model server's slots in real Redis: a cap, a line in order of arrival, a cancelled wait that
 * leaves the line, and a holder that stops renewing (a dead worker) whose slot lapses after its lease.
 * Each gate has its own connection, as each worker has.
 */

const instance = testInstance('model-gate');
const SERVER = 'http://127.0.0.1:11434';
const connections: Redis[] = [];

function gate(options: { max?: number; leaseMs?: number; serverUrl?: string } = {}) {
  const redis = new Redis(REDIS_URL);
  connections.push(redis);
  const made = new ModelGate({
    redis,
    instance,
    serverUrl: options.serverUrl ?? SERVER,
    max: options.max ?? 2,
    leaseMs: options.leaseMs ?? 5000,
    pollMs: 20,
  });
  return { gate: made, redis };
}

/** Asks for a slot and reports, in order, when it was told to wait and when it got the slot. */
function ask(g: ModelGate, name: string, log: string[], signal?: AbortSignal) {
  let told: (ahead: number) => void = () => undefined;
  const waiting = new Promise<number>((resolve) => {
    told = resolve;
  });
  const slot = g
    .acquire({
      ...(signal ? { signal } : {}),
      onWait: (ahead) => {
        log.push(`${name} waits behind ${ahead}`);
        told(ahead);
      },
    })
    .then((held) => {
      log.push(`${name} holds`);
      return held;
    });
  return { slot, waiting };
}

afterAll(async () => {
  for (const redis of connections) redis.disconnect();
  await dropInstanceKeys(instance);
});

describe('the model gate', () => {
  it('lets `max` requests in at once and the rest in, one per slot freed, in order of arrival', async () => {
    const log: string[] = [];
    const [a, b, c] = [gate(), gate(), gate()];
    const first = await ask(a.gate, 'A', log).slot;
    const second = await ask(b.gate, 'B', log).slot;
    const waiting: { slot: Promise<ModelSlot>; waiting: Promise<number> }[] = [];
    for (const [name, g] of [
      ['C', c.gate],
      ['D', a.gate],
      ['E', b.gate],
    ] as const) {
      const asked = ask(g, name, log);
      // Each is in line before the next comes: the order of arrival is known.
      await asked.waiting;
      waiting.push(asked);
    }
    expect(log).toEqual(['A holds', 'B holds', 'C waits behind 0', 'D waits behind 1', 'E waits behind 2']);
    // Another model server has slots of its own.
    await (await ask(gate({ serverUrl: 'http://other:11434' }).gate, 'other', []).slot).release();

    await first.release();
    const third = await waiting[0]?.slot;
    await second.release();
    const fourth = await waiting[1]?.slot;
    await third?.release();
    await (await waiting[2]?.slot)?.release();
    await fourth?.release();
    expect(log.slice(5)).toEqual(['C holds', 'D holds', 'E holds']);
  });

  it('never has more than `max` holders, whoever asks', async () => {
    const gates = [gate({ max: 3 }), gate({ max: 3 })];
    let inside = 0;
    let most = 0;
    const use = async (g: ModelGate) => {
      const slot = await g.acquire();
      inside += 1;
      most = Math.max(most, inside);
      await new Promise((resolve) => setTimeout(resolve, 15));
      inside -= 1;
      await slot.release();
    };
    await Promise.all(Array.from({ length: 12 }, (_, i) => use((gates[i % 2] as { gate: ModelGate }).gate)));
    expect(most).toBe(3);
  });

  it('gives up a place in line when the wait is cancelled, and the next one moves up', async () => {
    const log: string[] = [];
    const g = gate({ max: 1 }).gate;
    const held = await ask(g, 'A', log).slot;
    const stop = new AbortController();
    const cancelled = ask(g, 'B', log, stop.signal);
    await cancelled.waiting;
    const next = ask(g, 'C', log);
    expect(await next.waiting).toBe(1);
    stop.abort();
    const error = await cancelled.slot.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelBrokerError);
    expect((error as ModelBrokerError).kind).toBe('cancelled');
    await held.release();
    await (await next.slot).release();
    expect(log).toEqual(['A holds', 'B waits behind 0', 'C waits behind 1', 'C holds']);
  });

  it('keeps a slot renewed past its lease while held', async () => {
    const log: string[] = [];
    const g = gate({ max: 1, leaseMs: 300 }).gate;
    const held = await ask(g, 'A', log).slot;
    const other = ask(gate({ max: 1, leaseMs: 300 }).gate, 'B', log);
    await other.waiting;
    // Three leases long: without renewal B would have had the slot twice over.
    await new Promise((resolve) => setTimeout(resolve, 900));
    expect(log).toEqual(['A holds', 'B waits behind 0']);
    await held.release();
    await (await other.slot).release();
    expect(log).toEqual(['A holds', 'B waits behind 0', 'B holds']);
  });

  it('says so in words when Redis cannot be asked', async () => {
    const gone = gate({ max: 1 });
    gone.redis.disconnect();
    const error = await gone.gate.acquire().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelBrokerError);
    expect((error as ModelBrokerError).message).toMatch(
      /^cannot take a turn at the model server: Redis failed \(.+\)$/,
    );
  });

  it('frees the slot of a holder that stopped renewing (its worker died) after its lease', async () => {
    const log: string[] = [];
    const dying = gate({ max: 1, leaseMs: 400 });
    await ask(dying.gate, 'dead', log).slot;
    // The worker's connection goes: no renewal, no release, as when its process is killed.
    dying.redis.disconnect();
    const next = ask(gate({ max: 1, leaseMs: 400 }).gate, 'next', log);
    expect(await next.waiting).toBe(0);
    await (await next.slot).release();
    expect(log).toEqual(['dead holds', 'next waits behind 0', 'next holds']);
  });
});
