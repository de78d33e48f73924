import { HEARTBEAT_MS, type HostReport } from './host-report.js';

/**
 * The pure decisions about hosts: how each host is doing, where a new conversation goes, what a worker
 * does with a conversation homed elsewhere, and what a drain moves. The shells (the worker's host gate,
 * `/readyz`, `sandbot host`) read Redis and act on these.
 */

/** A host is answering while its newest report is this recent (a few missed beats are not an outage). */
export const LIVE_MS = 3 * HEARTBEAT_MS;
/** A new conversation goes to another host only when it has this many more free slots (no ping-pong). */
export const PLACEMENT_MARGIN = 2;

export type HostHealth = 'live' | 'silent' | 'gone';

export interface HostState {
  host: string;
  name?: string;
  endpoint?: string;
  workers: string[];
  /** When a worker of it last reported (ms). */
  lastSeen: number;
  /** live: reporting; silent: missed beats, within SANDBOT_HOST_GRACE_SECONDS; gone: past it. */
  health: HostHealth;
  live: number;
  maxLive: number;
  warm: number;
  /** Slots a new conversation could take: under the live cap, plus warm sandboxes waiting for one. */
  free: number;
  draining: boolean;
}

export function healthOf(lastSeen: number, now: number, graceMs: number): HostHealth {
  const age = now - lastSeen;
  if (age <= Math.min(LIVE_MS, graceMs)) return 'live';
  return age <= graceMs ? 'silent' : 'gone';
}

/** Each host from its workers' reports (the newest report speaks for the engine). */
export function hostStates(
  reports: readonly HostReport[],
  draining: ReadonlySet<string>,
  now: number,
  graceMs: number,
): Map<string, HostState> {
  const newest = new Map<string, HostReport>();
  const workers = new Map<string, string[]>();
  for (const r of reports) {
    const seen = newest.get(r.host);
    if (!seen || r.at > seen.at) newest.set(r.host, r);
    workers.set(r.host, [...(workers.get(r.host) ?? []), r.worker]);
  }
  const states = new Map<string, HostState>();
  for (const [host, r] of newest) {
    const health = healthOf(r.at, now, graceMs);
    states.set(host, {
      host,
      ...(r.name ? { name: r.name } : {}),
      ...(r.endpoint ? { endpoint: r.endpoint } : {}),
      workers: workers.get(host) ?? [],
      lastSeen: r.at,
      health,
      live: r.live,
      maxLive: r.maxLive,
      warm: r.warm,
      free: Math.max(0, r.maxLive - r.live) + r.warm,
      draining: draining.has(host),
    });
  }
  return states;
}

/** Hosts that may take new conversations: live and not being drained, the freest first. */
export function openHosts(states: ReadonlyMap<string, HostState>, except?: string): HostState[] {
  return [...states.values()]
    .filter((s) => s.health === 'live' && !s.draining && s.host !== except)
    .sort((a, b) => b.free - a.free || a.host.localeCompare(b.host));
}

export type Placement = { claim: true } | { forward: string };

/**
 * Whether this worker's host takes a conversation that has no home yet, or hands it to a freer host:
 * only when another live host has PLACEMENT_MARGIN more free slots (or this one is being drained).
 * `myFree` is this host's own count, fresher than its last report.
 */
export function placeNew(me: string, myFree: number, states: ReadonlyMap<string, HostState>): Placement {
  const best = openHosts(states, me)[0];
  if (!best) return { claim: true };
  if (states.get(me)?.draining) return { forward: best.host };
  return best.free >= myFree + PLACEMENT_MARGIN ? { forward: best.host } : { claim: true };
}

export type HomeVerdict = 'mine' | { forward: string } | { gone: string; since: number };

/**
 * What a worker does with a conversation homed on `home`: run it (its own host), pass it to its home's
 * queue (a host that answers, or has been silent less than the grace), or hold it: the home is gone.
 */
export function homeVerdict(home: string, me: string, states: ReadonlyMap<string, HostState>): HomeVerdict {
  if (home === me) return 'mine';
  const state = states.get(home);
  if (!state || state.health === 'gone') return { gone: home, since: state?.lastSeen ?? 0 };
  return { forward: home };
}

/** How a host is named to people: its engine's name when known (machines), and its ID (engines). */
export function hostLabel(host: string, state?: Pick<HostState, 'name'>): string {
  return state?.name ? `${state.name} (${host})` : host;
}

/** The words a held conversation gets, once per outage of its home. */
export function hostGoneNotice(label: string): string {
  return `This conversation's workspace is on host ${label}, which is not answering; say \`reset\` to start afresh here, or wait.`;
}

export interface DrainItem {
  conversation: string;
  /** A turn is running or messages are waiting: left where it is. */
  busy: boolean;
}

export type DrainStep = { conversation: string; move: string } | { conversation: string; skip: string };

/**
 * What `sandbot host drain` does with each conversation homed on `from`: idle ones move to the freest
 * open host (or `to`, when given and open); busy ones stay, saying why. Nothing moves without a target.
 */
export function drainPlan(
  from: string,
  items: readonly DrainItem[],
  states: ReadonlyMap<string, HostState>,
  to?: string,
): { target?: string; steps: DrainStep[]; problem?: string } {
  const open = openHosts(states, from);
  const target = to ? open.find((s) => s.host === to)?.host : open[0]?.host;
  if (!target) {
    const problem = to
      ? `host ${to} is not live (or is being drained): nothing moved`
      : 'no other live host to move conversations to: nothing moved';
    return { steps: [], problem };
  }
  const steps = items.map(
    (item): DrainStep =>
      item.busy
        ? { conversation: item.conversation, skip: 'busy (a turn is running or messages wait): left here' }
        : { conversation: item.conversation, move: target },
  );
  return { target, steps };
}
