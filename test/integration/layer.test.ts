import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import { layerPlan, namedLayer } from '../../sandbox/host/layers/layer.js';
import { judgeRegistration, type RegisteredRuntime } from '../../sandbox/host/layers/layer-check.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import { instanceKeys } from '../../src/contracts/redis/keys.js';
import { startWorker } from '../../src/worker/start-worker.js';
import { dropInstanceKeys, REDIS_URL, testInstance } from '../../testkit/redis.js';
import { shellModel, turnEnd } from '../helpers/shell-model.js';
import { type ScriptedStack, startScriptedStack, testConfig } from '../helpers/stack.js';

/**
 * SANDBOX_LAYER on the real engine: gvisor runs every sandbox under runsc (registered by
 * scripts/setup.sh), a worker refuses to start on a layer it cannot run, a change of layer recreates a
 * sandbox instead of reusing it, and /readyz names the layer the worker checked.
 */

const MODEL = 'qwen2.5:7b';
const config = testConfig(testInstance('layer'), {
  SANDBOX_LAYER: 'gvisor',
  SANDBOT_MODEL: MODEL,
  SANDBOT_NETWORK_RULES: 'web:granted=api.example.test',
  SANDBOT_EGRESS_PORT: '0',
});
let stack: ScriptedStack;

const docker = createDocker(config.DOCKER_HOST);
const redis = new Redis(REDIS_URL);
const turn = (conversation: string, command: string) => turnEnd(stack.url, conversation, command);

beforeAll(async () => {
  stack = await startScriptedStack(config, shellModel);
});

afterAll(async () => {
  await stack?.stop();
  redis.disconnect();
});

describe('SANDBOX_LAYER=gvisor', () => {
  it('runs the conversation’s sandbox under runsc, in gVisor’s kernel, with the layer’s limits', async () => {
    const end = await turn('alpha', 'dmesg | head -n 1; ls /workspace; echo "nproc=$(ulimit -u)"; id -u');
    expect(end.type).toBe('reply');
    const text = end.type === 'reply' ? end.text : '';
    expect(text).toContain('Starting gVisor');
    expect(text).toMatch(/inbox\s+(lost\+found\s+)?outbox/); // coreutils' ls works (the statx shim)
    expect(text).toContain(`nproc=${config.SANDBOX_PIDS}`);
    const [sandbox] = await sandboxDriverFromConfig(config).list();
    const info = await docker.getContainer(sandbox?.containerId ?? '').inspect();
    expect(info.HostConfig.Runtime).toBe('runsc');
    expect(info.Config.Labels['sandbot.runtime']).toBe('runsc');
    expect(info.HostConfig.PidsLimit).toBe(layerPlan(namedLayer(config)).pidsLimit);
  });

  it('reports the layer the worker checked on /readyz', async () => {
    const response = await fetch(`${stack.url}/readyz`);
    const body = (await response.json()) as { checks: Record<string, { ok: boolean; detail?: string }> };
    expect(body.checks.layer).toMatchObject({ ok: true, detail: expect.stringMatching(/^gvisor \(runsc\)/) });
  });

  it('serves a granted conversation through the protocol tunnel: no network device, only the proxy', async () => {
    const info = (await docker.info()) as { Runtimes?: Record<string, RegisteredRuntime> };
    const registration = judgeRegistration(layerPlan(namedLayer(config)), info.Runtimes ?? {});
    expect(registration).toMatchObject({ ok: true, egress: 'tunnel' }); // runsc is registered --network=none
    // The proxy answers (here: the granted name does not resolve, there being no DNS in tests), and the
    // sandbox's only interface is its loopback; an ungranted host is refused by the same proxy.
    const end = await turn(
      'granted',
      'curl -s http://api.example.test/; echo; curl -s http://other.example.test/; echo; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "; echo "proxy=$HTTP_PROXY"',
    );
    expect(end.type).toBe('reply');
    const text = end.type === 'reply' ? end.text : '';
    expect(text).toContain('api.example.test does not resolve');
    expect(text).toContain("other.example.test:80 is not granted to this conversation's network policy");
    expect(text).toMatch(/^lo$/m);
    expect(text).not.toMatch(/^eth\d/m);
    expect(text).toMatch(/^proxy=http:\/\/web%3Agranted:[0-9a-f]{64}@127\.0\.0\.1:3128$/m);
    const [sandbox] = (await sandboxDriverFromConfig(config).list()).filter(
      (s) => s.conversation === webConversationId('granted'),
    );
    const inspected = await docker.getContainer(sandbox?.containerId ?? '').inspect();
    expect(inspected.HostConfig.NetworkMode).toBe('none');
  });
});

describe('a layer the worker cannot run', () => {
  const refused = async (settings: Record<string, string>) => {
    const instance = testInstance('layer-refused');
    const refusedConfig = testConfig(instance, settings);
    try {
      const error = await startWorker(refusedConfig, createLogger(refusedConfig)).then(
        async (worker) => {
          await worker.stop();
          return undefined;
        },
        (e: unknown) => e as Error,
      );
      // It took no work: it never published a layer.
      expect(await redis.hlen(instanceKeys(instance).layers)).toBe(0);
      return error?.message ?? '';
    } finally {
      await dropInstanceKeys(instance);
    }
  };

  it('refuses to start when the runtime is not registered, saying how to register it', async () => {
    const message = await refused({ SANDBOX_LAYER: 'gvisor', SANDBOX_RUNTIME: 'runsc-not-registered' });
    expect(message).toMatch(
      /^the sandbox layer "gvisor" cannot run here: the engine has no runtime "runsc-not-registered"/,
    );
    expect(message).toContain('/etc/docker/daemon.json');
  });

  it('refuses the micro-VM layer while no micro-VM engine is there, never falling back', async () => {
    // An empty SANDBOT_VM_DIR holds no guest: the worker says so instead of using the host's engine.
    const vmDir = mkdtempSync(join(tmpdir(), 'sandbot-novm-'));
    const message = await refused({ SANDBOX_LAYER: 'microvm', SANDBOT_VM_DIR: vmDir });
    rmSync(vmDir, { recursive: true, force: true });
    expect(message).toMatch(/micro-VM guest is not built.*sandbot vm build/);
    expect(message).toContain('sandbot vm build');
  });
});

describe('a change of layer', () => {
  it('recreates a sandbox made under another runtime instead of reusing it', async () => {
    const conversation = webConversationId('switch');
    const container = testConfig(config.SANDBOT_INSTANCE, { SANDBOX_LAYER: 'container' });
    const runc = sandboxDriverFromConfig(container);
    await (await runc.open(conversation)).close();
    const before = (await runc.list()).find((s) => s.conversation === conversation);
    const gvisor = sandboxDriverFromConfig(config);
    await (await gvisor.open(conversation)).close();
    const after = (await gvisor.list()).find((s) => s.conversation === conversation);
    expect(after?.containerId).not.toBe(before?.containerId);
    const info = await docker.getContainer(after?.containerId ?? '').inspect();
    expect(info.HostConfig.Runtime).toBe('runsc');
    await gvisor.remove(conversation, { wipe: true });
  });
});
