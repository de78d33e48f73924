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
import { sandboxNames } from '../../sandbox/host/driver/docker-spec.js';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import { buildGuest } from '../../sandbox/host/vm/build.js';
import { syncImage } from '../../sandbox/host/vm/guest-engine.js';
import { MicroVm } from '../../sandbox/host/vm/micro-vm.js';
import { readClientTls } from '../../sandbox/host/vm/tls.js';
import type { AuditEvent } from '../../src/contracts/audit/events.js';
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
/**
 * How long a turn in the guest may take to end: QEMU here emulates (TCG, no KVM), and a heavy turn (the
 * outlive attack's 150 processes) took 26–40 s on a quiet machine and past 60 s on a busy one.
 */
const VM_TURN_MS = 4 * MINUTE;
const vmTurn = (url: string, session: string, text: string) => turnEnd(url, session, text, VM_TURN_MS);
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
/** The red-team attacks run inside the guest (issue #17): attack | outcome, printed after the file. */
const attacks: { attack: string; outcome: string }[] = [];

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
  const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\s+/g, ' ').trim();
  console.log(
    [
      '\nRed-team attacks inside the micro-VM',
      '| attack | outcome |',
      '|---|---|',
      ...attacks.map((a) => `| ${cell(a.attack)} | ${cell(a.outcome)} |`),
    ].join('\n'),
  );
}, 5 * MINUTE);

describe('the micro-VM layer', () => {
  it(
    'runs a conversation’s tool call inside the guest’s engine, not the host’s',
    async () => {
      const end = await timed('first turn', () =>
        vmTurn(
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
        vmTurn(
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
      const after = await vmTurn(stack!.url, 'granted', 'cat /workspace/g.txt 2>/dev/null || echo wiped');
      expect(after.type === 'reply' && after.text).toMatch(/^wiped$/m);
    },
    10 * MINUTE,
  );

  describe('red-team attacks inside the guest (issue #17)', () => {
    /** Far under the turn timeout (600 s), far over a TCG turn of a few commands (seconds, slower on a busy machine). */
    const PROMPT_MS = 2 * MINUTE;
    const ms = async <T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> => {
      const began = performance.now();
      const value = await work();
      return { value, ms: Math.round(performance.now() - began) };
    };
    const s = (millis: number) => `${(millis / 1000).toFixed(1)} s`;
    const audit = async (session: string): Promise<AuditEvent[]> => {
      await stack!.worker.audit.settle();
      const text = await stack!.worker.audit.journal.read(webConversationId(session));
      return (text ?? '')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as AuditEvent);
    };
    const sandboxOf = (session: string) =>
      guest.getContainer(sandboxNames(config.SANDBOT_INSTANCE, webConversationId(session)).container);

    /** Sets $rtpid to the runtime's pid (as in test/redteam/outlive.test.ts). */
    const FIND_RUNTIME =
      'for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = node ] && grep -q runtime/main.js $p/cmdline 2>/dev/null && rtpid=$(basename $p); done';
    /** Counts the attack's processes still alive (bracketed patterns: the counting shell does not match). */
    const COUNT_LEFT =
      'n=0; for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q -e "slee[p] 3000" -e "outlive-chai[n]" && n=$((n+1)); done; echo "left=$n"';

    it(
      'outlive: fork chains and 150 setsid decoys that flood stdout after the turn are gone before the next',
      async () => {
        const session = 'rt-outlive';
        // The commands of test/redteam/outlive.test.ts. Each chain generation forks the next and exits; the
        // one that finds GO passed floods the runtime's stdout (under TCG this may begin before the reply).
        const chain =
          ': outlive-chain; if [ $(date +%s) -lt $GO ]; then setsid sh -c "$CHAIN" < /dev/null > /dev/null 2>&1 & else while :; do head -c 900000 /dev/zero | tr "\\0" y; echo; done > /proc/$RT/fd/1; fi';
        const attack = [
          FIND_RUNTIME,
          'for i in $(seq 150); do setsid sleep 3000 < /dev/null > /dev/null 2>&1 & done',
          `export RT=$rtpid GO=$(( $(date +%s) + 3 )) CHAIN='${chain}'`,
          'for c in 1 2 3 4; do setsid sh -c "$CHAIN" < /dev/null > /dev/null 2>&1 & done',
          'sleep 0.2; echo chains-started',
        ].join('\n');
        const first = await timed('outlive turn', () => vmTurn(stack!.url, session, attack));
        expect(first.type, JSON.stringify(first)).toBe('reply');
        expect(first.type === 'reply' && first.text).toContain('chains-started');
        // Time for any survivor to flood; then the guest's engine looks inside the sandbox (as root).
        await new Promise((resolve) => setTimeout(resolve, 6000));
        const sandbox = sandboxOf(session);
        let seenByEngine = 'sandbox stopped';
        if ((await sandbox.inspect()).State.Running) {
          const exec = await sandbox.exec({
            Cmd: ['sh', '-c', COUNT_LEFT],
            User: '0',
            AttachStdout: true,
            AttachStderr: true,
          });
          const stream = await exec.start({});
          const chunks: Buffer[] = [];
          stream.on('data', (chunk: Buffer) => chunks.push(chunk));
          await new Promise((resolve) => stream.on('end', resolve));
          seenByEngine = /left=\d+/.exec(Buffer.concat(chunks).toString('latin1'))?.[0] ?? 'no count';
          expect(seenByEngine).toBe('left=0');
        }
        const next = await ms(() => vmTurn(stack!.url, session, COUNT_LEFT));
        expect(next.value.type, JSON.stringify(next.value)).toBe('reply');
        const left = Number(
          /left=(\d+)/.exec(next.value.type === 'reply' ? next.value.text : '')?.[1] ?? 'NaN',
        );
        attacks.push({
          attack: 'fork chains + 150 setsid decoys that flood stdout with 900 KB lines after the turn',
          outcome:
            left === 0
              ? `none alive after the turn (guest engine's exec: ${seenByEngine}; the agent's own count: left=0); next turn answered in ${s(next.ms)}`
              : `${left} SURVIVED the turn`,
        });
        expect(left).toBe(0);
        expect(next.ms).toBeLessThan(PROMPT_MS);
      },
      10 * MINUTE,
    );

    it(
      'sparse files: 40 × 4 GiB in /workspace, the reply comes promptly and the snapshot is cut and recorded',
      async () => {
        const session = 'rt-sparse';
        const made = await ms(() =>
          vmTurn(
            stack!.url,
            session,
            'truncate -s 4G /workspace/sparse{1..40} && du -sh /workspace | cut -f1 && echo sparse-made',
          ),
        );
        expect(made.value.type, JSON.stringify(made.value)).toBe('reply');
        expect(made.value.type === 'reply' && made.value.text).toContain('sparse-made');
        // 160 GiB streamed through the guest's engine would take hours under TCG.
        expect(made.ms).toBeLessThan(PROMPT_MS);
        const isCut = (e: AuditEvent) =>
          e.kind === 'limit.hit' && e.data.limit === 'workspace_read' && e.data.read === 'snapshot';
        const deadline = Date.now() + PROMPT_MS;
        let cut: AuditEvent | undefined;
        while (!cut && Date.now() < deadline) {
          cut = (await audit(session)).find(isCut);
          if (!cut) await new Promise((resolve) => setTimeout(resolve, 500));
        }
        expect(cut?.data).toMatchObject({
          reason: 'bytes',
          at: expect.stringMatching(/^\/workspace\/sparse\d+$/),
        });
        attacks.push({
          attack: '40 sparse 4 GiB files in /workspace (160 GiB apparent, no blocks)',
          outcome: `reply in ${s(made.ms)}; the snapshot cut at ${cut?.data.at} (${cut?.data.bytes} bytes streamed), recorded as limit.hit`,
        });
      },
      10 * MINUTE,
    );

    it(
      'disk: dd past the capped /workspace fails at the cap',
      async () => {
        const session = 'rt-sparse';
        const capMb = config.SANDBOX_WORKSPACE_MB;
        expect(capMb).toBe(64);
        const turn = await ms(() =>
          vmTurn(
            stack!.url,
            session,
            `dd if=/dev/zero of=/workspace/fill bs=1M count=${capMb + 36} 2>&1 | grep -E "No space|copied"; du -m /workspace/fill | cut -f1; rm -f /workspace/fill; echo fill-done`,
          ),
        );
        expect(turn.value.type, JSON.stringify(turn.value)).toBe('reply');
        const text = turn.value.type === 'reply' ? turn.value.text : '';
        expect(text).toContain('fill-done');
        expect(text).toContain('No space left on device');
        const written = Number(/^(\d+)$/m.exec(text)?.[1] ?? 'NaN');
        expect(written).toBeLessThanOrEqual(capMb);
        attacks.push({
          attack: `dd ${capMb + 36} MB into /workspace (cap ${capMb} MiB)`,
          outcome: `No space left on device at the cap (${written} MiB written), in ${s(turn.ms)}`,
        });
      },
      10 * MINUTE,
    );
  });

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
        vmTurn(stack!.url, 'vm', 'cat /workspace/note.txt'),
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
