import { describe, expect, it } from 'vitest';
import { layerPlan, namedLayer } from '../../sandbox/host/layers/layer.js';
import { parseConfig } from '../../src/contracts/config/load.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import type { EgressRecord } from '../../src/worker/egress/proxy.js';
import { layerRefusal, layerReport, netRequestEvent, workerOptions } from '../../src/worker/worker-wiring.js';

const record: EgressRecord = {
  conversation: webConversationId('a'),
  source: '172.30.0.2',
  method: 'CONNECT',
  host: 'example.com',
  port: 443,
  allowed: false,
  reason: 'not granted',
  bytesOut: 10,
  bytesIn: 32,
  durationMs: 5,
};

describe('worker wiring', () => {
  it('records a proxied request against its conversation, and nothing without one', () => {
    expect(netRequestEvent(record)).toEqual({
      conversation: webConversationId('a'),
      actor: 'proxy',
      kind: 'net.request',
      data: {
        host: 'example.com',
        port: 443,
        allowed: false,
        reason: 'not granted',
        bytes: 42,
        method: 'CONNECT',
        durationMs: 5,
      },
    });
    const { reason: _, ...allowed } = { ...record, allowed: true };
    expect(netRequestEvent(allowed)?.data).not.toHaveProperty('reason');
    expect(netRequestEvent({ ...record, conversation: undefined })).toBeUndefined();
    // Made with a skill's own credential (or on a stream of its tools): the audit names the skill.
    expect(netRequestEvent({ ...record, skill: 'weather' })?.data).toMatchObject({ skill: 'weather' });
    expect(netRequestEvent(record)?.data).not.toHaveProperty('skill');
  });

  it('reports the layer checked, with its runtime only when it has one', () => {
    const plan = layerPlan(namedLayer(parseConfig({ SANDBOX_LAYER: 'container' })));
    const verdict = { ok: true as const, plan, detail: 'runc', egress: 'bridge' as const };
    expect(layerReport(verdict, {})).toEqual({ layer: plan.layer, detail: 'runc', egress: 'bridge' });
    expect(layerReport({ ...verdict, plan: { ...plan, runtime: 'runsc' } }, {})).toMatchObject({
      runtime: 'runsc',
    });
  });

  it('says why a layer cannot run, and the fix when there is one', () => {
    const plan = layerPlan(namedLayer(parseConfig({ SANDBOX_LAYER: 'container' })));
    expect(layerRefusal({ ok: false, plan, reason: 'no engine' })).toBe(
      `the sandbox layer "${plan.layer}" cannot run here: no engine`,
    );
    expect(layerRefusal({ ok: false, plan, reason: 'no engine', fix: 'start docker' })).toBe(
      `the sandbox layer "${plan.layer}" cannot run here: no engine (fix: start docker)`,
    );
  });

  it('takes the worker options from config', () => {
    const config = parseConfig({ SANDBOT_TASKS_PER_USER: '2', SANDBOT_TASKS_PER_CHANNEL: '7' });
    expect(workerOptions(config)).toEqual({
      instance: config.SANDBOT_INSTANCE,
      concurrency: config.SANDBOT_WORKER_CONCURRENCY,
      leaseSeconds: config.SANDBOT_TURN_LEASE_SECONDS,
      idleSeconds: config.SANDBOX_IDLE_SECONDS,
      egressRefusalTripwire: config.SANDBOT_TRIPWIRE_EGRESS_REFUSALS,
      maxLive: config.SANDBOX_MAX_LIVE,
      ephemeral: config.SANDBOT_EPHEMERAL,
      taskLimits: { perUser: 2, perChannel: 7 },
      retentionDays: 30,
    });
  });
});
