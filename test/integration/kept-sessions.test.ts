import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import type { DockerSandboxDriver } from '../../sandbox/host/driver/docker-driver.js';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import type { SandboxSession } from '../../sandbox/host/driver/types.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import type { RuntimeToWorker } from '../../src/contracts/protocol/agent.js';
import type { LineResult } from '../../src/contracts/protocol/lines.js';
import { cleanInstance } from '../../testkit/instance.js';
import { testInstance } from '../../testkit/redis.js';
import { testConfig } from '../helpers/stack.js';

/**
 * The worker's driver keeps attach connections open between turns (keepAttached): a warm open is
 * then a lease on the kept connection. Nothing sent between two leases may reach the second, and a
 * connection to a stopped or differently made sandbox is never handed out.
 */

const config = testConfig(testInstance('kept'));
const conversation = webConversationId('kept');
let worker: DockerSandboxDriver;
let other: DockerSandboxDriver;

beforeAll(() => {
  worker = sandboxDriverFromConfig(config);
  worker.keepAttached(4);
  // Another worker's driver (or the CLI): attaches for a moment, keeps nothing.
  other = sandboxDriverFromConfig(config);
});

afterAll(async () => {
  worker.dropAttached();
  await cleanInstance(config);
});

/** Every line a session gets while `during` runs, then a short while longer. */
async function linesDuring(session: SandboxSession, during: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const off = session.onMessage((r: LineResult<RuntimeToWorker>) => {
    if (r.ok) seen.push(r.value.type);
  });
  await during();
  await new Promise((r) => setTimeout(r, 300));
  off();
  return seen;
}

async function hello(session: SandboxSession): Promise<void> {
  const ready = new Promise<void>((resolve) => {
    const off = session.onMessage((r) => {
      if (r.ok && r.value.type === 'ready') {
        off();
        resolve();
      }
    });
  });
  session.send({ type: 'hello' });
  await ready;
}

describe('kept attach connections', () => {
  it('hands a warm open the kept connection, and nothing sent between two leases', async () => {
    const first = await worker.open(conversation);
    await hello(first);
    await first.close();
    // While no lease is out, the runtime answers someone else: that line must reach no later lease.
    const passer = await other.open(conversation);
    expect(passer.containerId).toBe(first.containerId);
    await hello(passer);
    await passer.close();
    // Its copy of that line reaches the kept connection (every attached client gets the output).
    await new Promise((r) => setTimeout(r, 300));
    const second = await worker.open(conversation);
    expect(second.containerId).toBe(first.containerId);
    expect(await worker.state(conversation)).toBe('running');
    expect(await linesDuring(second, () => hello(second))).toEqual(['ready']);
    await second.close();
    expect(() => second.send({ type: 'hello' })).toThrow(/lease .* was closed/);
  });

  it('drops the kept connection when the sandbox stops, and attaches anew', async () => {
    const before = await worker.open(conversation);
    const closed = new Promise<string>((resolve) => before.onClose(resolve));
    expect(await other.stop(conversation)).toBe(true);
    expect(await closed).toMatch(/ended|closed/);
    await before.close();
    const after = await worker.open(conversation);
    expect(after.containerId).toBe(before.containerId);
    await hello(after);
    await after.close();
  });

  it('never hands out a connection to a container made for another network', async () => {
    const network = `${config.SANDBOT_INSTANCE}-net`;
    const docker = createDocker(config.DOCKER_HOST);
    await docker.createNetwork({ Name: network, Internal: true });
    try {
      const plain = await worker.open(conversation);
      await plain.close();
      const granted = await worker.open(conversation, {
        network: { name: network, proxyUrl: 'http://192.0.2.1:3128' },
      });
      expect(granted.containerId).not.toBe(plain.containerId);
      await hello(granted);
      await granted.close();
      const again = await worker.open(conversation, {
        network: { name: network, proxyUrl: 'http://192.0.2.1:3128' },
      });
      expect(again.containerId).toBe(granted.containerId);
      await again.close();
    } finally {
      await worker.remove(conversation, { wipe: true });
      await docker.getNetwork(network).remove();
    }
  });
});
