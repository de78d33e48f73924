import type { Check } from '../probe.js';
import type { HostsSnapshot } from './host-report.js';
import { type HostHealth, hostLabel, hostStates } from './host-state.js';

/** One host in `/readyz`'s `hosts` section. */
export interface HostEntry {
  host: string;
  name?: string;
  health: HostHealth;
  draining: boolean;
  lastSeenSeconds: number;
  sandboxes: { live: number; max: number; warm: number };
  /** Conversations homed there (their files live on it). */
  conversations: number;
  workers: number;
}

/**
 * `/readyz`'s view of the hosts, from the workers' reports: each host, its health and conversations;
 * and a `hosts` check, not ready only when hosts have reported and none is live (no turn can run).
 * A gone host is named with how many conversations wait for it, but does not fail readiness: the
 * other hosts' conversations still answer.
 */
export function hostsSection(
  snapshot: HostsSnapshot,
  now: number,
  graceMs: number,
): { check: Check; hosts: HostEntry[] } {
  const states = hostStates(snapshot.reports, snapshot.draining, now, graceMs);
  const counts = new Map<string, number>();
  for (const host of snapshot.homes.values()) counts.set(host, (counts.get(host) ?? 0) + 1);
  const hosts = [...states.values()].map((s) => ({
    host: s.host,
    ...(s.name ? { name: s.name } : {}),
    health: s.health,
    draining: s.draining,
    lastSeenSeconds: Math.max(0, Math.round((now - s.lastSeen) / 1000)),
    sandboxes: { live: s.live, max: s.maxLive, warm: s.warm },
    conversations: counts.get(s.host) ?? 0,
    workers: s.workers.length,
  }));
  if (hosts.length === 0) return { check: { ok: true, detail: 'no host has reported yet' }, hosts };
  const parts = hosts.map(
    (h) =>
      `${hostLabel(h.host, h)}: ${h.health}${h.draining ? ' (draining)' : ''}, ${h.conversations} conversation${h.conversations === 1 ? '' : 's'}${h.health === 'live' ? '' : ` waiting for it (last seen ${h.lastSeenSeconds} s ago)`}`,
  );
  return {
    check: { ok: hosts.some((h) => h.health === 'live'), detail: parts.join('; ').slice(0, 500) },
    hosts,
  };
}
