import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import { pack } from 'tar-stream';
import {
  confinedHostConfig,
  SANDBOX_USER,
  WORKSPACE_DIR,
} from '../../../../sandbox/host/driver/docker-spec.js';
import { gvisorSeccompOpt } from '../../../../sandbox/host/layers/gvisor-seccomp.js';
import type { LayerPlan } from '../../../../sandbox/host/layers/layer.js';
import { VET_TOOLS_DIR } from './scripts.js';

/**
 * The engine side of the vetting sandbox: the tools volume (strace from this host, with its loader and
 * libraries), the container (no network, DNS pointed at its own loopback, /run a tmpfs for the
 * recorder, ptrace allowed under gVisor for strace alone), commands run in it, and its removal.
 */

export interface TarEntry {
  name: string;
  bytes?: Buffer;
  mode: number;
  uid?: number;
  dir?: boolean;
}

export function tarOf(entries: readonly TarEntry[]) {
  const archive = pack();
  for (const e of entries) {
    const owner = { uid: e.uid ?? 0, gid: e.uid ?? 0 };
    if (e.dir) archive.entry({ name: `${e.name}/`, type: 'directory', mode: e.mode, ...owner });
    else archive.entry({ name: e.name, mode: e.mode, ...owner }, e.bytes ?? Buffer.alloc(0));
  }
  archive.finalize();
  return archive as unknown as NodeJS.ReadableStream;
}

const statusOf = (err: unknown) => (err as { statusCode?: number } | undefined)?.statusCode;

/** strace and what it loads, read from this host: absent strace is a refusal in words. */
export async function hostStrace(): Promise<{ entries: TarEntry[]; loader: string; digest: string }> {
  const path = '/usr/bin/strace';
  const ldd = await promisify(execFile)('ldd', [path]).catch((error: Error) => {
    throw new Error(
      `strace is needed on this host for the behavioural run (apt-get install strace): ${error.message}`,
    );
  });
  const libs = [...ldd.stdout.matchAll(/(\/\S+\.so[.\d]*)\s+\(0x/g)].map((m) => m[1] ?? '');
  const loader = libs.find((l) => /ld-linux|ld-musl|ld64/.test(basename(l)));
  if (!loader) throw new Error('cannot find the dynamic loader of this host’s strace');
  const entries: TarEntry[] = [{ name: 'lib', mode: 0o755, dir: true }];
  entries.push({ name: 'strace', bytes: await readFile(path), mode: 0o755 });
  for (const lib of libs)
    entries.push({ name: `lib/${basename(lib)}`, bytes: await readFile(lib), mode: 0o755 });
  const hash = createHash('sha256');
  for (const e of entries) hash.update(e.name).update(e.bytes ?? '');
  return { entries, loader: basename(loader), digest: hash.digest('hex').slice(0, 16) };
}

/** Fills a new volume through a container that never starts (the engine's archive API, any DOCKER_HOST). */
export async function fillVolume(
  docker: Dockerode,
  image: string,
  volume: string,
  labels: Record<string, string>,
  entries: readonly TarEntry[],
): Promise<void> {
  try {
    await docker.getVolume(volume).inspect();
    return;
  } catch (err) {
    if (statusOf(err) !== 404) throw err;
  }
  await docker.createVolume({ Name: volume, Labels: labels });
  const loader = await docker.createContainer({
    name: `${volume}-load-${randomBytes(4).toString('hex')}`,
    Image: image,
    Cmd: ['true'],
    Labels: labels,
    NetworkDisabled: true,
    HostConfig: {
      NetworkMode: 'none',
      Mounts: [{ Type: 'volume', Source: volume, Target: '/fill', ReadOnly: false }],
      LogConfig: { Type: 'none', Config: {} },
    },
  });
  try {
    await loader.putArchive(tarOf(entries), { path: '/fill' });
  } catch (error) {
    await docker
      .getVolume(volume)
      .remove()
      .catch(() => undefined);
    throw error;
  } finally {
    await loader.remove({ force: true }).catch(() => undefined);
  }
}

export interface VetSpec {
  name: string;
  image: string;
  plan: LayerPlan;
  cpus: number;
  tmpMb: number;
  labels: Record<string, string>;
  workspaceVolume: string;
  toolsVolume: string;
  skill: { name: string; volume: string };
}

/** The vetting sandbox: hardened as a conversation's, with no network and nothing granted. */
export function vetContainerSpec(spec: VetSpec): Dockerode.ContainerCreateOptions {
  const { plan } = spec;
  const volume = (Source: string, Target: string, ReadOnly: boolean) => ({
    Type: 'volume' as const,
    Source,
    Target,
    ReadOnly,
  });
  return {
    name: spec.name,
    Image: spec.image,
    Labels: spec.labels,
    Hostname: 'sandbox',
    Cmd: ['sleep', 'infinity'],
    User: SANDBOX_USER,
    WorkingDir: WORKSPACE_DIR,
    Env: plan.env,
    HostConfig: {
      NetworkMode: 'none',
      // Name lookups go to the sandbox's own loopback, where strace sees each query's name.
      Dns: ['127.0.0.1'],
      ...confinedHostConfig({
        ...plan,
        cpus: spec.cpus,
        tmpMb: spec.tmpMb,
        // The recorder's socket.
        tmpfs: { '/run': 'rw,noexec,nosuid,nodev,size=4m,mode=0755' },
        securityOpt: plan.gvisor ? [gvisorSeccompOpt({ tracing: true })] : plan.securityOpt,
      }),
      Mounts: [
        volume(spec.workspaceVolume, WORKSPACE_DIR, false),
        volume(spec.skill.volume, `/skills/${spec.skill.name}`, true),
        volume(spec.toolsVolume, VET_TOOLS_DIR, true),
      ],
      RestartPolicy: { Name: 'no' },
      LogConfig: { Type: 'none', Config: {} },
    },
  };
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command in the container and waits (at most `timeoutMs`), keeping at most `maxBytes` of output. */
export async function execIn(
  docker: Dockerode,
  container: Dockerode.Container,
  options: { cmd: string[]; user: string; env?: string[]; timeoutMs: number; maxBytes?: number },
): Promise<ExecResult> {
  const exec = await container.exec({
    Cmd: options.cmd,
    User: options.user,
    Env: options.env ?? [],
    WorkingDir: WORKSPACE_DIR,
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  const max = options.maxBytes ?? 16 * 1024 * 1024;
  const collect = () => {
    const sink = new PassThrough();
    const chunks: Buffer[] = [];
    let size = 0;
    sink.on('data', (c: Buffer) => {
      if (size < max) chunks.push(c);
      size += c.length;
    });
    return { sink, text: () => Buffer.concat(chunks).toString('utf8') };
  };
  const out = collect();
  const err = collect();
  docker.modem.demuxStream(stream, out.sink, err.sink);
  let timer: NodeJS.Timeout | undefined;
  await new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      (stream as unknown as { destroy(): void }).destroy();
      resolve();
    }, options.timeoutMs);
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', () => resolve());
  });
  clearTimeout(timer);
  // A hijacked connection stays open after the exec ends: close it, or it keeps the process alive.
  (stream as unknown as { destroy(): void }).destroy();
  const info = await exec.inspect().catch(() => undefined);
  return { code: info?.ExitCode ?? null, stdout: out.text(), stderr: err.text() };
}

/** Starts a command in the container and leaves it running. */
export async function execDetached(
  container: Dockerode.Container,
  cmd: string[],
  user: string,
): Promise<void> {
  const exec = await container.exec({ Cmd: cmd, User: user, AttachStdout: false, AttachStderr: false });
  const answer = (await exec.start({ Detach: true })) as unknown as { destroy?: () => void } | undefined;
  // The engine answers at once; its response stream would keep the connection (and the CLI) open.
  answer?.destroy?.();
}

/** Vetting sandboxes left by a run that died (older than `ms`): removed with their volumes. */
export async function removeStale(docker: Dockerode, instance: string, ms: number): Promise<void> {
  const filters = { label: [`sandbot.instance=${instance}`, 'sandbot.kind=vet'] };
  const stale = (await docker.listContainers({ all: true, filters })).filter(
    (c) => Date.now() - c.Created * 1000 > ms,
  );
  for (const c of stale) {
    await docker
      .getContainer(c.Id)
      .remove({ force: true, v: true })
      .catch(() => undefined);
    for (const m of c.Mounts ?? []) {
      if (m.Name && !m.Name.includes('-vet-tools-'))
        await docker
          .getVolume(m.Name)
          .remove()
          .catch(() => undefined);
    }
  }
}
