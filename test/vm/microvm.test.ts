import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { request } from 'node:https';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import { buildGuest } from '../../sandbox/host/vm/build.js';
import { syncImage } from '../../sandbox/host/vm/guest-engine.js';
import { MicroVm } from '../../sandbox/host/vm/micro-vm.js';
import { readClientTls } from '../../sandbox/host/vm/tls.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { type OutsideHost, startOutsideHost } from '../../testkit/outside-host.js';
import { dropInstanceKeys, testInstance } from '../../testkit/redis.js';
import { shellModel, turnEnd } from '../helpers/shell-model.js';
import { startStack, testConfig } from '../helpers/stack.js';

/**
 * SANDBOX_LAYER=microvm on real parts: the guest is built from Debian packages (cached between runs in
 * SANDBOT_VM_TEST_DIR), the worker boots it under QEMU (software emulation here: ~30 s), and one
 * conversation's turn runs its tool inside the guest's engine. One boot for the whole file;
 * A second boot follows (QEMU killed, the worker restarts the guest); SANDBOT_VM_TEST_RESTART=0 skips it.
 */

const MINUTE = 60_000;
const vmDir = process.env.SANDBOT_VM_TEST_DIR ?? join(tmpdir(), 'sandbot-vm-test');
const config = testConfig(testInstance('vm'), {
  SANDBOX_LAYER: 'microvm',
  SANDBOT_VM_DIR: vmDir,
  SANDBOT_VM_CPUS: '1',
  SANDBOT_VM_MEMORY_MB: '1024',
  SANDBOT_VM_DISK_MB: '4096',
  SANDBOT_VM_BOOT_SECONDS: '600',
  SANDBOX_TURN_TIMEOUT_SECONDS: '600',
  SANDBOX_TOOL_TIMEOUT_SECONDS: '300',
  SANDBOT_MODEL_TIMEOUT_SECONDS: '300',
  // The outside serves on 8080 (a grant without a port means 80 and 443).
  SANDBOT_NETWORK_RULES: 'web:granted=api.example.test:8080',
  // Size-capped volumes: ext4 images the worker has loop-mounted in the guest (through its engine).
  SANDBOX_WORKSPACE_MB: '64',
  SANDBOX_SESSION_MB: '32',
  SANDBOT_EGRESS_PORT: '0',
});
/** A web server outside (on the host's engine, in a documentation range) for the granted turn. */
const OUTSIDE = '198.51.100.20';
let outside: OutsideHost;
const vm = new MicroVm(config);
const host = createDocker(undefined);
let ollama: FakeOllama;
let stack: Awaited<ReturnType<typeof startStack>> | undefined;
let guest: Dockerode;
const seconds: Record<string, number> = {};

async function timed<T>(label: string, work: () => Promise<T>): Promise<T> {
  const began = performance.now();
  try {
    return await work();
  } finally {
    seconds[label] = Math.round((performance.now() - began) / 100) / 10;
  }
}

const guestKernel = () =>
  (JSON.parse(readFileSync(vm.paths.manifest, 'utf8')) as { kernelPackage: string }).kernelPackage.replace(
    /^linux-image-/,
    '',
  );

beforeAll(async () => {
  ollama = await startFakeOllama({ models: ['qwen2.5:7b'], script: shellModel });
  Object.assign(config, { OLLAMA_HOST: ollama.url, SANDBOT_MODEL: 'qwen2.5:7b' });
  await vm.down();
  await timed('build', () => buildGuest(vm.paths));
  // A fresh data disk every run: seeding it on the host takes seconds, loading an image in the guest minutes.
  await rm(vm.paths.dataDisk, { force: true });
  outside = await startOutsideHost(host, {
    name: `sbx-vm-outside-${process.pid}`,
    subnet: '198.51.100.0/24',
    address: OUTSIDE,
  });
  stack = await timed('worker start (seed + boot)', () =>
    startStack(config, {
      lookup: async (name) =>
        name === 'api.example.test'
          ? [{ address: OUTSIDE, family: 4 }]
          : Promise.reject(new Error('ENOTFOUND')),
    }),
  );
  const state = vm.running();
  if (!state) throw new Error('the worker did not leave the micro-VM running');
  guest = await vm.client(state.port);
}, 30 * MINUTE);

afterAll(async () => {
  await stack?.stop();
  await vm.down();
  await outside?.stop();
  await ollama?.close();
  await dropInstanceKeys(config.SANDBOT_INSTANCE);
  console.log(`micro-VM test timings (s): ${JSON.stringify(seconds)}`);
}, 5 * MINUTE);

describe('the micro-VM layer', () => {
  it(
    'runs a conversation’s tool call inside the guest’s engine, not the host’s',
    async () => {
      const end = await timed('first turn', () =>
        turnEnd(
          stack!.url,
          'vm',
          'uname -r; id -u; echo vm-note > /workspace/note.txt; cat /workspace/note.txt; df -m /workspace /session | tail -n 2',
        ),
      );
      expect(end.type, JSON.stringify(end)).toBe('reply');
      const text = end.type === 'reply' ? end.text : '';
      // The guest's kernel, not the host's, as the non-root agent user, with its own volume.
      expect(text).toContain(guestKernel());
      expect(guestKernel()).not.toBe(release());
      expect(text).toContain('1000');
      expect(text).toContain('vm-note');
      // /workspace and /session are the capped images (64 and 32 MiB, less ext4's own share).
      const sizes = [...text.matchAll(/^\/dev\/loop\d+\s+(\d+)\s/gm)].map((m) => Number(m[1]));
      expect(sizes).toHaveLength(2);
      expect(sizes[0]).toBeGreaterThan(40);
      expect(sizes[0]).toBeLessThanOrEqual(64);
      expect(sizes[1]).toBeLessThanOrEqual(32);

      const label = { label: [`sandbot.instance=${config.SANDBOT_INSTANCE}`] };
      const onHost = await host.listContainers({ all: true, filters: label });
      const inGuest = await guest.listContainers({ all: true, filters: label });
      expect(onHost).toEqual([]);
      expect(inGuest.map((c) => c.Labels['sandbot.conversation'])).toEqual(['web:vm']);
      expect(await host.listVolumes({ filters: label }).then((v) => v.Volumes ?? [])).toEqual([]);
      // /readyz: the worker reports its layer and that the guest's engine answers.
      const ready = (await (await fetch(`${stack!.url}/readyz`)).json()) as {
        checks: Record<string, { ok: boolean; detail?: string }>;
      };
      expect(ready.checks.layer).toEqual({ ok: true, detail: 'microvm, egress tunnelled on 1 worker' });
    },
    20 * MINUTE,
  );

  it(
    'loads a rebuilt image into the guest by sending only the layers it lacks',
    async () => {
      const tag = `${config.SANDBOT_INSTANCE}-derived:latest`;
      const context = tar.pack();
      context.entry({ name: 'Dockerfile' }, `FROM ${config.SANDBOX_IMAGE}\nCOPY marker /marker\n`);
      context.entry({ name: 'marker' }, `${config.SANDBOT_INSTANCE}\n`);
      context.finalize();
      const build = await host.buildImage(context as unknown as NodeJS.ReadableStream, { t: tag });
      await new Promise((resolve) => host.modem.followProgress(build, resolve));
      const built = await host.getImage(tag).inspect();
      try {
        const result = await timed('rebuilt image load', () => syncImage(host, guest, tag));
        // One new layer sent; the sandbox image's own layers, already in the guest, left out.
        expect(result).toEqual({ status: 'loaded', layers: built.RootFS.Layers?.length, sent: 1 });
        expect((await guest.getImage(tag).inspect()).Id).toBe(built.Id);
        expect(await syncImage(host, guest, tag)).toEqual({ status: 'present' });
      } finally {
        await guest
          .getImage(tag)
          .remove()
          .catch(() => undefined);
        await host
          .getImage(tag)
          .remove()
          .catch(() => undefined);
      }
    },
    10 * MINUTE,
  );

  it('lets no one reach the guest engine without the worker’s client certificate', async () => {
    const port = vm.running()!.port;
    const tls = await readClientTls(vm.paths.tls);
    const refused = await new Promise<string>((resolve) => {
      // The CA is trusted, so only the missing client certificate can make this fail.
      const req = request({ host: '127.0.0.1', port, path: '/version', ca: tls.ca }, (res) =>
        resolve(`answered ${res.statusCode}`),
      );
      req.on('error', (error) => resolve(`refused: ${error.message}`));
      req.end();
    });
    expect(refused).toMatch(/^refused/);
    expect(await guest.ping().then(String)).toBe('OK');
    // QEMU itself holds no root: it dropped to its own user once its disks and sockets were open.
    const status = readFileSync(`/proc/${vm.running()!.pid}/status`, 'utf8');
    const uid = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status)?.slice(1) ?? [];
    expect(uid).toHaveLength(4);
    expect(new Set(uid).size).toBe(1);
    expect(uid[0]).not.toBe('0');
    expect(execFileSync('getent', ['passwd', uid[0] ?? '']).toString()).toMatch(/^sandbot-vm:/);
  });

  it(
    'gives the guest no way out: even its own network namespace reaches neither the host nor beyond',
    async () => {
      // A container on the guest's own network (not a sandbox's "none") tries the host's Redis through
      // QEMU's gateway (10.0.2.2 is the host's loopback when the user network is not restricted) and a
      // public address.
      const probe = await guest.createContainer({
        Image: config.SANDBOX_IMAGE,
        User: '1000:1000',
        Cmd: [
          'bash',
          '-c',
          'for target in 10.0.2.2/6379 1.1.1.1/443; do timeout 5 bash -c "exec 3<>/dev/tcp/$target" 2>/dev/null && echo "REACHED $target"; done; echo probed',
        ],
        HostConfig: { NetworkMode: 'host' },
      });
      try {
        await timed('probe container', async () => {
          await probe.start();
          await probe.wait();
        });
        const logs = String(await probe.logs({ stdout: true, stderr: true }));
        expect(logs).toContain('probed');
        expect(logs).not.toContain('REACHED');
      } finally {
        await probe.remove({ force: true });
      }
    },
    10 * MINUTE,
  );

  it(
    'serves a network-granted conversation through the protocol tunnel, the guest’s network still closed',
    async () => {
      const end = await timed('granted turn', () =>
        turnEnd(
          stack!.url,
          'granted',
          [
            `curl -s -m 60 http://api.example.test:${outside.port}/from-the-guest`,
            `curl -s -m 60 http://other.example.test:${outside.port}/`,
            `curl -s -m 5 --noproxy '*' http://${OUTSIDE}:${outside.port}/direct || echo direct-failed`,
            'echo kept > /workspace/g.txt',
          ].join('; echo; '),
        ),
      );
      expect(end.type, JSON.stringify(end)).toBe('reply');
      const text = end.type === 'reply' ? end.text : '';
      expect(text).toContain('outside says hi to /from-the-guest');
      expect(text).toContain(`other.example.test:${outside.port} is not granted`);
      expect(text).toContain('direct-failed');
      const [sandbox] = await guest.listContainers({
        filters: { label: ['sandbot.conversation=web:granted'] },
      });
      expect(sandbox?.HostConfig.NetworkMode).toBe('none');
      // A wipe deletes the capped images in the guest too: the next turn starts with an empty workspace.
      const driver = sandboxDriverFromConfig(config, undefined, guest);
      expect(await driver.remove(webConversationId('granted'), { wipe: true })).toBe(true);
      const after = await turnEnd(stack!.url, 'granted', 'cat /workspace/g.txt 2>/dev/null || echo wiped');
      expect(after.type === 'reply' && after.text).toMatch(/^wiped$/m);
    },
    10 * MINUTE,
  );

  it.skipIf(process.env.SANDBOT_VM_TEST_RESTART === '0')(
    'restarts a guest whose QEMU died; the conversation continues with its files',
    async () => {
      const before = vm.running()!;
      process.kill(before.pid, 'SIGKILL');
      await timed('restart', async () => {
        const deadline = Date.now() + 15 * MINUTE;
        while (Date.now() < deadline) {
          const now = vm.running();
          if (
            now &&
            now.pid !== before.pid &&
            (await guest.ping().then(
              () => true,
              () => false,
            ))
          )
            return;
          await new Promise((resolve) => setTimeout(resolve, 2000));
        }
        throw new Error('the worker did not restart the micro-VM');
      });
      expect(vm.running()!.port).toBe(before.port);
      const end = await timed('turn after restart', () =>
        turnEnd(stack!.url, 'vm', 'cat /workspace/note.txt'),
      );
      expect(end.type === 'reply' && end.text).toContain('vm-note');
    },
    30 * MINUTE,
  );

  it(
    'powers the guest off cleanly when the worker that started it stops',
    async () => {
      const driver = sandboxDriverFromConfig(config, undefined, guest);
      for (const sandbox of await driver.list()) await driver.remove(sandbox.conversation, { wipe: true });
      await timed('stop', async () => {
        await stack!.stop();
        stack = undefined;
      });
      expect(vm.running()).toBeUndefined();
      expect(readFileSync(vm.paths.console, 'utf8')).toContain('sandbot-guest: powering off');
    },
    5 * MINUTE,
  );
});
