import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { recreateReason } from '../../sandbox/host/driver/docker-container.js';
import {
  containerSpec,
  instanceFilter,
  RUNTIME_COMMAND,
  type SandboxLimits,
  sandboxNames,
  volumeSpecs,
} from '../../sandbox/host/driver/docker-spec.js';
import { ConversationId } from '../../src/contracts/conversation/id.js';

const a = ConversationId.parse('web:alpha');
const b = ConversationId.parse('slack:T1:C2:1700000000.000100');
const limits: SandboxLimits = {
  instance: 'prod',
  image: 'sandbot-sandbox:latest',
  memoryMb: 256,
  cpus: 0.5,
  pidsLimit: 128,
  tmpMb: 32,
};

describe('sandboxNames', () => {
  it('derives stable, distinct, Docker-valid names per conversation and instance', () => {
    const na = sandboxNames('prod', a);
    expect(sandboxNames('prod', a)).toEqual(na);
    expect(sandboxNames('prod', b).container).not.toBe(na.container);
    expect(sandboxNames('test', a).container).not.toBe(na.container);
    for (const name of Object.values(na)) expect(name).toMatch(/^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/);
    expect(na.container).toMatch(/^prod-sbx-[0-9a-f]{20}$/);
    expect(na.workspaceVolume).toMatch(/^prod-ws-[0-9a-f]{20}$/);
    expect(na.sessionVolume).toMatch(/^prod-sess-[0-9a-f]{20}$/);
  });
});

describe('containerSpec', () => {
  const spec = containerSpec(limits, a);
  const host = spec.HostConfig ?? {};

  it('is hardened: no network, read-only root, no capabilities, no privilege gain, uid 1000', () => {
    expect(host.NetworkMode).toBe('none');
    expect(host.ReadonlyRootfs).toBe(true);
    expect(host.CapDrop).toEqual(['ALL']);
    // The runtime starts as root with only what it needs to start processes as other uids, and drops
    // to uid 1000 at once (--agent-uid; sandbox/runtime/privilege.ts).
    expect(host.CapAdd).toEqual(['SETUID', 'SETGID', 'SETPCAP', 'KILL']);
    expect(host.SecurityOpt).toEqual(['no-new-privileges']);
    expect(host.Privileged).toBe(false);
    expect(spec.User).toBe('0:0');
    expect(spec.Cmd?.slice(-2)).toEqual(['--agent-uid', '1000']);
    expect(host.Tmpfs).toEqual({ '/tmp': 'rw,noexec,nosuid,nodev,size=32m' });
    expect(host.Init).toBe(true);
  });

  it('applies the limits, with swap equal to memory', () => {
    expect(host.Memory).toBe(256 * 1024 * 1024);
    expect(host.MemorySwap).toBe(256 * 1024 * 1024);
    expect(host.NanoCpus).toBe(500_000_000);
    expect(host.PidsLimit).toBe(128);
  });

  it('mounts only its own two volumes and carries no environment of sandbot', () => {
    const names = sandboxNames('prod', a);
    expect(host.Mounts).toEqual([
      { Type: 'volume', Source: names.workspaceVolume, Target: '/workspace', ReadOnly: false },
      { Type: 'volume', Source: names.sessionVolume, Target: '/session', ReadOnly: false },
    ]);
    expect(host.Binds).toBeUndefined();
    expect(spec.Env).toEqual([]);
  });

  it('keeps stdin open across attaches, without a TTY, so the output stays multiplexed', () => {
    expect(spec).toMatchObject({ OpenStdin: true, StdinOnce: false, Tty: false, AttachStdin: true });
  });

  it('labels the container and its volumes with instance, conversation and kind', () => {
    const labels = {
      'sandbot.instance': 'prod',
      'sandbot.conversation': 'web:alpha',
      'sandbot.kind': 'sandbox',
    };
    expect(spec.Labels).toEqual({
      ...labels,
      'sandbot.network': 'none',
      'sandbot.runtime': 'default',
      'sandbot.skills': 'none',
    });
    for (const volume of volumeSpecs('prod', a)) expect(volume.Labels).toEqual(labels);
    expect(instanceFilter('prod').label).toContain('sandbot.instance=prod');
  });

  it('joins the egress network with proxy settings only when granted, and uses capped mounts when given', () => {
    expect(host.NetworkMode).toBe('none');
    expect(spec.Env).toEqual([]);
    const granted = containerSpec(limits, a, { name: 'prod-egress', proxyUrl: 'http://c:m@172.18.0.1:3128' });
    expect(granted.HostConfig?.NetworkMode).toBe('prod-egress');
    expect(granted.Env).toContain('HTTPS_PROXY=http://c:m@172.18.0.1:3128');
    expect(granted.Labels?.['sandbot.network']).toBe('prod-egress http://c:m@172.18.0.1:3128');
    const capped = containerSpec(limits, a, undefined, { workspace: '/d/ws', session: '/d/sess' });
    expect(capped.HostConfig?.Mounts).toEqual([
      { Type: 'bind', Source: '/d/ws', Target: '/workspace', ReadOnly: false },
      { Type: 'bind', Source: '/d/sess', Target: '/session', ReadOnly: false },
    ]);
  });

  it('runs the image’s runtime command with the line cap, and the tunnel’s port only when tunnelled', () => {
    const agent = ['--agent-uid', '1000'];
    expect(spec.Cmd).toEqual([...RUNTIME_COMMAND, ...agent]);
    const dockerfile = readFileSync(new URL('../../sandbox/Dockerfile', import.meta.url), 'utf8');
    expect(JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? 'null')).toEqual(RUNTIME_COMMAND);
    const capped = containerSpec({ ...limits, maxLineBytes: 65536 }, a);
    expect(capped.Cmd).toEqual([...RUNTIME_COMMAND, ...agent, '--max-line-bytes', '65536']);
    const tunnelled = containerSpec(limits, a, {
      via: 'tunnel',
      proxyUrl: 'http://c:m@127.0.0.1:3128',
      connect: () => new PassThrough(),
    });
    expect(tunnelled.Cmd).toEqual([...RUNTIME_COMMAND, ...agent, '--egress-port', '3128']);
    expect(tunnelled.HostConfig?.NetworkMode).toBe('none');
    expect(tunnelled.Env).toEqual(
      ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'].map((n) => `${n}=http://c:m@127.0.0.1:3128`),
    );
    expect(tunnelled.Labels?.['sandbot.network']).toBe('tunnel http://c:m@127.0.0.1:3128');
  });

  it('sets the OCI runtime only when one is configured, and labels the container with it', () => {
    expect(host.Runtime).toBeUndefined();
    const gvisor = containerSpec({ ...limits, runtime: 'runsc' }, a);
    expect(gvisor.HostConfig?.Runtime).toBe('runsc');
    expect(gvisor.Labels?.['sandbot.runtime']).toBe('runsc');
  });

  it('adds what the layer asks for: environment, security options, a process rlimit', () => {
    expect(host.Ulimits).toBeUndefined();
    const layered = containerSpec(
      { ...limits, env: ['LD_PRELOAD=/x.so'], securityOpt: ['seccomp={}'], nproc: 64 },
      a,
      { name: 'prod-egress', proxyUrl: 'http://c:m@172.18.0.1:3128' },
    );
    expect(layered.Env?.[0]).toBe('LD_PRELOAD=/x.so');
    expect(layered.Env).toContain('HTTP_PROXY=http://c:m@172.18.0.1:3128');
    expect(layered.HostConfig?.SecurityOpt).toEqual(['no-new-privileges', 'seccomp={}']);
    expect(layered.HostConfig?.Ulimits).toEqual([{ Name: 'nproc', Soft: 64, Hard: 64 }]);
  });
});

describe('when a sandbox is recreated rather than reused', () => {
  const state = { runtime: 'runc', network: 'none', skills: 'none' };
  it('names the reason: another layer, network policy or set of skills; none when it fits', () => {
    expect(recreateReason(state, { runtime: 'runc', network: 'none' })).toBeUndefined();
    expect(recreateReason(state, { runtime: 'runsc', network: 'none' })).toBe('sandbox layer changed');
    expect(recreateReason(state, { runtime: 'runc', network: 'sbx-egress' })).toBe('network policy changed');
    expect(recreateReason(state, { runtime: 'runc', network: 'none', skills: 'greeter@1' })).toBe(
      'skills changed',
    );
    expect(recreateReason(state, { runtime: 'runc', network: 'none', skills: 'none' })).toBeUndefined();
  });
});
