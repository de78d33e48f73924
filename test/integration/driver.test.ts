import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerSandboxDriver } from '../../sandbox/host/driver/docker-driver.js';
import { sandboxNames } from '../../sandbox/host/driver/docker-spec.js';
import type { SandboxSession } from '../../sandbox/host/driver/types.js';
import { buildSandboxImage, resolveBaseImage } from '../../sandbox/host/image/image.js';
import { ConversationId } from '../../src/contracts/conversation/id.js';
import type { RuntimeToWorker } from '../../src/contracts/protocol/agent.js';
import type { LineResult } from '../../src/contracts/protocol/lines.js';

// Real engine, real sandbox image (built here from dist/: `npm run build` first), real agent runtime.
const docker = new Docker();
const instance = `t-driver-${randomBytes(3).toString('hex')}`;
const image = `sandbot-sandbox:${instance}`;
const MAX_LINE = 8192;
let driver: DockerSandboxDriver;
const sessions: SandboxSession[] = [];

const conv = (name: string) => ConversationId.parse(`web:${name}`);
const containerOf = (c: ConversationId) => docker.getContainer(sandboxNames(instance, c).container);

/** Resolves with the first result matching `match`; rejects after `ms` so a silent runtime fails the test. */
function waitFor(
  session: SandboxSession,
  match: (r: LineResult<RuntimeToWorker>) => boolean,
  ms = 20_000,
): Promise<LineResult<RuntimeToWorker>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error('no matching message from the sandbox'));
    }, ms);
    const off = session.onMessage((r) => {
      if (!match(r)) return;
      clearTimeout(timer);
      off();
      resolve(r);
    });
  });
}

const isReady = (r: LineResult<RuntimeToWorker>) => r.ok && r.value.type === 'ready';

async function openReady(c: ConversationId): Promise<SandboxSession> {
  const session = await driver.open(c);
  sessions.push(session);
  const ready = waitFor(session, isReady);
  session.send({ type: 'hello' });
  await ready;
  return session;
}

/** Runs a shell command inside the sandbox as its agent user. */
async function execIn(
  c: ConversationId,
  command: string,
  user = '1000:1000',
): Promise<{ code: number; stdout: string }> {
  const exec = await containerOf(c).exec({
    Cmd: ['sh', '-c', command],
    AttachStdout: true,
    AttachStderr: true,
    User: user,
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  docker.modem.demuxStream(stream, out, new PassThrough().resume());
  await once(stream, 'end');
  const { ExitCode } = await exec.inspect();
  return { code: ExitCode ?? -1, stdout: Buffer.concat(chunks).toString('utf8') };
}

async function volumeExists(name: string): Promise<boolean> {
  try {
    await docker.getVolume(name).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
}

beforeAll(async () => {
  await docker.ping();
  await buildSandboxImage(docker, { tag: image, baseImage: await resolveBaseImage(docker) });
  driver = new DockerSandboxDriver({
    docker,
    instance,
    image,
    memoryMb: 192,
    cpus: 0.5,
    pidsLimit: 96,
    tmpMb: 16,
    maxLineBytes: MAX_LINE,
  });
});

afterAll(async () => {
  for (const s of sessions) await s.close();
  const label = [`sandbot.instance=${instance}`];
  for (const c of await docker.listContainers({ all: true, filters: { label } })) {
    await docker.getContainer(c.Id).remove({ force: true });
  }
  const { Volumes } = await docker.listVolumes({ filters: { label } });
  for (const v of Volumes ?? []) await docker.getVolume(v.Name).remove();
  await docker
    .getImage(image)
    .remove({ force: true })
    .catch(() => undefined);
});

describe('DockerSandboxDriver on a real engine', () => {
  const a = conv('alpha');
  const b = conv('beta');

  it('creates a sandbox on first open, and its runtime answers hello with ready', async () => {
    const session = await openReady(a);
    expect(session.conversation).toBe(a);
    const info = (await driver.list()).find((i) => i.conversation === a);
    expect(info).toMatchObject({ state: 'running', name: sandboxNames(instance, a).container });
  });

  it('runs the container hardened, as configured and as seen from inside', async () => {
    const names = sandboxNames(instance, a);
    const inspect = await containerOf(a).inspect();
    const host = inspect.HostConfig;
    expect(host.NetworkMode).toBe('none');
    expect(host.ReadonlyRootfs).toBe(true);
    expect(host.CapDrop).toEqual(['ALL']);
    // Only for the runtime, which works as uid 1000 and starts every process as one uid alone.
    expect(host.CapAdd).toEqual(['SETUID', 'SETGID', 'SETPCAP', 'KILL']);
    expect(host.SecurityOpt).toEqual(['no-new-privileges']);
    expect(host.Privileged).toBe(false);
    expect(host.Memory).toBe(192 * 1024 * 1024);
    expect(host.MemorySwap).toBe(192 * 1024 * 1024);
    expect(host.NanoCpus).toBe(500_000_000);
    expect(host.PidsLimit).toBe(96);
    expect(host.Init).toBe(true);
    expect(host.Tmpfs).toEqual({ '/tmp': 'rw,noexec,nosuid,nodev,size=16m' });
    expect(inspect.Config.User).toBe('0:0');
    expect(inspect.Mounts.map((m) => [m.Name, m.Destination]).sort()).toEqual(
      [
        [names.workspaceVolume, '/workspace'],
        [names.sessionVolume, '/session'],
      ].sort(),
    );
    const envNames = inspect.Config.Env.map((e) => e.slice(0, e.indexOf('=')));
    expect(envNames.filter((n) => /SANDBOT|REDIS|DOCKER|SLACK|DISCORD|OLLAMA|TOKEN|SECRET/i.test(n))).toEqual(
      [],
    );

    expect((await execIn(a, 'id -u; id -g')).stdout).toBe('1000\n1000\n');
    expect((await execIn(a, 'ls /sys/class/net')).stdout.trim()).toBe('lo');
    expect((await execIn(a, 'grep CapEff /proc/self/status')).stdout).toMatch(/CapEff:\s+0{16}/);
    expect((await execIn(a, 'touch /opt/sandbot/x')).code).not.toBe(0);
    expect((await execIn(a, 'touch /tmp/x && echo ok')).stdout).toBe('ok\n');
    const tmpExec = await execIn(a, 'cp /bin/true /tmp/t && /tmp/t');
    expect(tmpExec.code).not.toBe(0); // /tmp is noexec
  });

  it("keeps one conversation's workspace invisible to another's", async () => {
    await openReady(b);
    expect((await execIn(a, 'echo secret-of-a > /workspace/a.txt && cat /workspace/a.txt')).stdout).toBe(
      'secret-of-a\n',
    );
    expect((await execIn(b, 'test -e /workspace/a.txt; echo $?')).stdout).toBe('1\n');
    expect(
      (await execIn(b, 'find / -name a.txt -path "*workspace*" 2>/dev/null | wc -l')).stdout.trim(),
    ).toBe('0');
  });

  it('stops a sandbox (the session sees the end) and reopens it with its workspace intact', async () => {
    const session = await openReady(a);
    const closed = new Promise<string>((resolve) => session.onClose(resolve));
    expect(await driver.stop(a)).toBe(true);
    expect(await closed).toMatch(/\S/);
    expect((await containerOf(a).inspect()).State.Running).toBe(false);
    expect(() => session.send({ type: 'hello' })).toThrow(/open it again/);

    await openReady(a);
    expect((await containerOf(a).inspect()).State.Running).toBe(true);
    expect((await execIn(a, 'cat /workspace/a.txt')).stdout).toBe('secret-of-a\n');
  });

  it('gives two concurrent opens of a new conversation one container, both attached to it', async () => {
    const c = conv('gamma');
    const [s1, s2] = await Promise.all([driver.open(c), driver.open(c)]);
    sessions.push(s1, s2);
    const both = Promise.all([waitFor(s1, isReady), waitFor(s2, isReady)]);
    s1.send({ type: 'hello' });
    await both;
    expect((await driver.list()).filter((i) => i.conversation === c)).toHaveLength(1);
  });

  it('turns an over-long line written from inside the container into a protocol error, then carries on', async () => {
    const session = await openReady(b);
    const refused = waitFor(session, (r) => !r.ok);
    // The agent cannot write to the runtime's stdout (red team: protocol.test.ts); root in the container
    // can (PID 1 is the init, same stdout), which is what this test of the worker's line cap needs.
    const flood = await execIn(
      b,
      `head -c ${MAX_LINE * 4} /dev/zero | tr '\\0' x > /proc/1/fd/1; echo > /proc/1/fd/1`,
      '0:0',
    );
    expect(flood.code).toBe(0);
    expect(await refused).toMatchObject({
      ok: false,
      error: expect.stringMatching(new RegExp(`over ${MAX_LINE}`)),
    });
    const ready = waitFor(session, isReady);
    session.send({ type: 'hello' });
    await ready;
  });

  it('removes a sandbox keeping its volumes, or wiping them', async () => {
    const names = sandboxNames(instance, a);
    expect(await driver.remove(a)).toBe(true);
    expect(await volumeExists(names.workspaceVolume)).toBe(true);
    await openReady(a);
    expect((await execIn(a, 'cat /workspace/a.txt')).stdout).toBe('secret-of-a\n');

    expect(await driver.remove(a, { wipe: true })).toBe(true);
    expect((await driver.list()).some((i) => i.conversation === a)).toBe(false);
    expect(await volumeExists(names.workspaceVolume)).toBe(false);
    expect(await volumeExists(names.sessionVolume)).toBe(false);
    expect(await driver.remove(a, { wipe: true })).toBe(false);
    expect(await driver.stop(a)).toBe(false);
  });
});
