import { describe, expect, it } from 'vitest';
import { containerSpec } from '../../sandbox/host/driver/docker-spec.js';
import type { LayerPlan } from '../../sandbox/host/layers/layer.js';
import { ConversationId } from '../../src/contracts/conversation/id.js';
import { vetContainerSpec } from '../../src/worker/skills/behaviour/vet-container.js';

/** A skill's vetting run is confined as a conversation's sandbox is (the same hardening, one source). */

const plan = (gvisor: boolean): LayerPlan => ({
  layer: gvisor ? 'gvisor' : 'container',
  gvisor,
  engine: 'local',
  memoryMb: 256,
  pidsLimit: gvisor ? 2048 : 128,
  ...(gvisor ? { runtime: 'runsc', nproc: 128 } : {}),
  env: [],
  securityOpt: gvisor ? ['seccomp={}'] : [],
});

const vetSpec = (gvisor: boolean) =>
  vetContainerSpec({
    name: 'vet-x',
    image: 'sandbot-sandbox:latest',
    plan: plan(gvisor),
    cpus: 0.5,
    tmpMb: 32,
    labels: {},
    workspaceVolume: 'vet-ws',
    toolsVolume: 'vet-tools',
    skill: { name: 'weather', volume: 'vet-skill' },
  }).HostConfig ?? {};

const sandboxSpec = (gvisor: boolean) => {
  const p = plan(gvisor);
  return (
    containerSpec(
      {
        instance: 'prod',
        image: 'sandbot-sandbox:latest',
        memoryMb: p.memoryMb,
        cpus: 0.5,
        pidsLimit: p.pidsLimit,
        tmpMb: 32,
        ...(p.runtime ? { runtime: p.runtime } : {}),
        ...(p.nproc ? { nproc: p.nproc } : {}),
        securityOpt: p.securityOpt,
      },
      ConversationId.parse('web:alpha'),
    ).HostConfig ?? {}
  );
};

const SHARED = [
  'ReadonlyRootfs',
  'CapDrop',
  'Privileged',
  'IpcMode',
  'Memory',
  'MemorySwap',
  'NanoCpus',
  'PidsLimit',
  'Ulimits',
  'Init',
  'Runtime',
] as const;

describe('vetContainerSpec', () => {
  for (const gvisor of [false, true]) {
    it(`has the sandbox's confinement under ${gvisor ? 'gVisor' : 'runc'}, with no capability kept and no network`, () => {
      const vet = vetSpec(gvisor);
      const sandbox = sandboxSpec(gvisor);
      for (const key of SHARED) expect(vet[key], key).toEqual(sandbox[key]);
      expect(vet.ReadonlyRootfs).toBe(true);
      expect(vet.CapDrop).toEqual(['ALL']);
      expect(vet.CapAdd).toBeUndefined();
      expect(vet.SecurityOpt?.[0]).toBe('no-new-privileges');
      expect(vet.Memory).toBe(256 * 1024 * 1024);
      expect(vet.MemorySwap).toBe(vet.Memory);
      expect(vet.NetworkMode).toBe('none');
      expect(vet.Tmpfs?.['/tmp']).toBe(sandbox.Tmpfs?.['/tmp']);
      expect(vet.Tmpfs?.['/tmp']).toMatch(/noexec/);
      expect(vet.Tmpfs?.['/run']).toMatch(/noexec,nosuid,nodev/);
      if (gvisor) {
        expect(vet.Runtime).toBe('runsc');
        expect(vet.Ulimits).toEqual([{ Name: 'nproc', Soft: 128, Hard: 128 }]);
        // strace alone needs ptrace: gVisor's profile with tracing, not the plan's.
        expect(vet.SecurityOpt).toHaveLength(2);
        expect(vet.SecurityOpt?.[1]).not.toBe('seccomp={}');
      } else {
        expect(vet.Runtime).toBeUndefined();
        expect(vet.SecurityOpt).toEqual(['no-new-privileges']);
      }
    });
  }
});
