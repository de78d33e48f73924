import { describe, expect, it } from 'vitest';
import { type HostReport, hostIdOf } from '../../src/shared/hosts/host-report.js';
import { hostsSection } from '../../src/shared/hosts/host-section.js';
import {
  drainPlan,
  healthOf,
  homeVerdict,
  hostGoneNotice,
  hostLabel,
  hostStates,
  LIVE_MS,
  placeNew,
} from '../../src/shared/hosts/host-state.js';

const NOW = 1_000_000_000;
const GRACE = 120_000;

function report(host: string, at: number, live = 0, overrides: Partial<HostReport> = {}): HostReport {
  return { host, worker: `w-${host}`, live, maxLive: 8, warm: 0, at, ...overrides };
}

const states = (reports: HostReport[], draining: string[] = []) =>
  hostStates(reports, new Set(draining), NOW, GRACE);

describe('host health', () => {
  it('is live while reporting, silent within the grace, gone after it', () => {
    expect(healthOf(NOW - 1000, NOW, GRACE)).toBe('live');
    expect(healthOf(NOW - LIVE_MS - 1, NOW, GRACE)).toBe('silent');
    expect(healthOf(NOW - GRACE - 1, NOW, GRACE)).toBe('gone');
    // A grace shorter than the heartbeat window: gone as soon as the grace is past.
    expect(healthOf(NOW - 3000, NOW, 2000)).toBe('gone');
  });

  it('takes the newest report of a host and counts free slots with the warm pool', () => {
    const s = states([
      report('a', NOW - 5000, 6),
      report('a', NOW - 100, 3, { worker: 'w-a2', warm: 2 }),
      report('b', NOW - GRACE - 5),
    ]);
    expect(s.get('a')).toMatchObject({ health: 'live', live: 3, free: 7, workers: ['w-a', 'w-a2'] });
    expect(s.get('b')?.health).toBe('gone');
  });
});

describe('placing a new conversation', () => {
  it('claims it here unless another live host is freer by the margin', () => {
    const s = states([report('a', NOW, 4), report('b', NOW, 3)]);
    expect(placeNew('a', 4, s)).toEqual({ claim: true });
    const freer = states([report('a', NOW, 6), report('b', NOW, 1)]);
    expect(placeNew('a', 2, freer)).toEqual({ forward: 'b' });
  });

  it('never hands it to a silent, gone or draining host', () => {
    const s = states([report('a', NOW, 8), report('b', NOW - LIVE_MS - 1), report('c', NOW, 0)], ['c']);
    expect(placeNew('a', 0, s)).toEqual({ claim: true });
  });

  it('hands it on from a host being drained, when another is open', () => {
    const s = states([report('a', NOW, 0), report('b', NOW, 7)], ['a']);
    expect(placeNew('a', 8, s)).toEqual({ forward: 'b' });
    expect(placeNew('a', 8, states([report('a', NOW, 0)], ['a']))).toEqual({ claim: true });
  });
});

describe("a conversation's home", () => {
  it('runs here, goes to its live or silent home, or is held when the home is gone', () => {
    const s = states([report('a', NOW), report('b', NOW - LIVE_MS - 1), report('c', NOW - GRACE - 1)]);
    expect(homeVerdict('a', 'a', s)).toBe('mine');
    expect(homeVerdict('b', 'a', s)).toEqual({ forward: 'b' });
    expect(homeVerdict('c', 'a', s)).toEqual({ gone: 'c', since: NOW - GRACE - 1 });
    // A home no worker has ever reported (forgotten): gone too, never run elsewhere.
    expect(homeVerdict('zz', 'a', s)).toEqual({ gone: 'zz', since: 0 });
  });

  it('names the host and says what to do', () => {
    const text = hostGoneNotice(hostLabel('MLKN:CBXI/0a1b2c3d', { name: 'box2' }));
    expect(text).toBe(
      "This conversation's workspace is on host box2 (MLKN:CBXI/0a1b2c3d), which is not answering; say `reset` to start afresh here, or wait.",
    );
    expect(hostLabel('abc')).toBe('abc');
  });
});

describe('draining a host', () => {
  const items = [
    { conversation: 'web:one', busy: false },
    { conversation: 'web:two', busy: true },
  ];

  it('moves idle conversations to the freest open host and leaves busy ones, saying so', () => {
    const s = states([report('a', NOW), report('b', NOW, 6), report('c', NOW, 1)]);
    const plan = drainPlan('a', items, s);
    expect(plan.target).toBe('c');
    expect(plan.steps).toEqual([
      { conversation: 'web:one', move: 'c' },
      { conversation: 'web:two', skip: expect.stringMatching(/^busy/) },
    ]);
    expect(drainPlan('a', items, s, 'b').target).toBe('b');
  });

  it('moves nothing without a live target', () => {
    const s = states([report('a', NOW), report('b', NOW - GRACE - 1)]);
    expect(drainPlan('a', items, s)).toMatchObject({
      steps: [],
      problem: expect.stringMatching(/no other live host/),
    });
    expect(drainPlan('a', items, s, 'b').problem).toMatch(/not live/);
  });
});

describe('host ids', () => {
  it('is the engine ID, with its data root when that is not the default (engines sharing one key)', () => {
    expect(hostIdOf({ ID: 'MLKN:CBXI', DockerRootDir: '/var/lib/docker' })).toBe('MLKN:CBXI');
    const other = hostIdOf({ ID: 'MLKN:CBXI', DockerRootDir: '/tmp/sbxh-1/data' });
    expect(other).toMatch(/^MLKN:CBXI\/[0-9a-f]{8}$/);
    expect(hostIdOf({ ID: 'MLKN:CBXI', DockerRootDir: '/tmp/sbxh-2/data' })).not.toBe(other);
    expect(() => hostIdOf({})).toThrow(/no ID/);
  });
});

describe("/readyz's hosts", () => {
  const snapshot = (reports: HostReport[], homes: Record<string, string> = {}) => ({
    reports,
    draining: new Set(['b']),
    homes: new Map(Object.entries(homes)),
  });

  it('lists each host with its conversations; ready while one host is live', () => {
    const { check, hosts } = hostsSection(
      snapshot([report('a', NOW, 2), report('b', NOW - GRACE - 4000)], {
        'web:x': 'a',
        'web:y': 'b',
        'web:z': 'b',
      }),
      NOW,
      GRACE,
    );
    expect(check.ok).toBe(true);
    expect(check.detail).toBe(
      'a: live, 1 conversation; b: gone (draining), 2 conversations waiting for it (last seen 124 s ago)',
    );
    expect(hosts).toEqual([
      expect.objectContaining({
        host: 'a',
        health: 'live',
        conversations: 1,
        sandboxes: { live: 2, max: 8, warm: 0 },
      }),
      expect.objectContaining({
        host: 'b',
        health: 'gone',
        draining: true,
        conversations: 2,
        lastSeenSeconds: 124,
      }),
    ]);
  });

  it('is not ready when hosts reported and none is live; says so when none reported', () => {
    expect(hostsSection(snapshot([report('a', NOW - GRACE - 1)]), NOW, GRACE).check.ok).toBe(false);
    expect(hostsSection(snapshot([]), NOW, GRACE).check).toEqual({
      ok: true,
      detail: 'no host has reported yet',
    });
  });
});
