import { Resolver } from 'node:dns/promises';

/** Counted slots per key (a conversation, a source address): at most `max` held at once per key. */
export class Slots {
  private readonly held = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** A release function (safe to call twice), or undefined when the key already holds `max`. */
  take(key: string): (() => void) | undefined {
    const now = this.held.get(key) ?? 0;
    if (now >= this.max) return undefined;
    this.held.set(key, now + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.held.get(key) ?? 1) - 1;
      if (left <= 0) this.held.delete(key);
      else this.held.set(key, left);
    };
  }

  count(key: string): number {
    return this.held.get(key) ?? 0;
  }
}

/**
 * The proxy's default name lookup: DNS queries through c-ares, which has its own sockets, instead of
 * `dns.lookup`, which blocks one of libuv's 4 threads per name (shared with the worker's file I/O) for
 * as long as the system resolver takes. Bounded in time by the resolver's timeout and tries.
 */
export function dnsResolve(): (host: string) => Promise<{ address: string; family: number }[]> {
  const resolver = new Resolver({ timeout: 2000, tries: 2 });
  return async (host) => {
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
    const found = [
      ...(v4.status === 'fulfilled' ? v4.value.map((address) => ({ address, family: 4 })) : []),
      ...(v6.status === 'fulfilled' ? v6.value.map((address) => ({ address, family: 6 })) : []),
    ];
    if (found.length === 0) throw new Error(`${host} does not resolve`);
    return found;
  };
}
