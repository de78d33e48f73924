import { randomBytes } from 'node:crypto';
import type Dockerode from 'dockerode';
import { type LayerPlan, registrationHint } from './layer.js';

/**
 * Proves a layer plan can run before anything is started under it: the runtime is registered with the
 * engine, a throwaway container of the sandbox image with the sandboxes' hardening runs under it, and
 * (for gVisor) the kernel it saw was gVisor's. The judging is pure; `checkLayer` does the I/O.
 */

/**
 * How granted sandboxes under the plan reach the egress proxy: `bridge`, the internal egress network;
 * `tunnel`, their protocol stream, where they have no usable network device (see SandboxNetwork).
 */
export type EgressRoute = 'bridge' | 'tunnel';

export type LayerVerdict =
  | { ok: true; plan: LayerPlan; detail: string; egress: EgressRoute }
  | { ok: false; plan: LayerPlan; reason: string; fix?: string };

/** What `docker info` says about one registered runtime. */
export interface RegisteredRuntime {
  path?: string;
  runtimeArgs?: string[];
}

export type Registration =
  | { ok: true; args: string[]; egress: EgressRoute }
  | { ok: false; reason: string; fix: string };

/** Is the plan's runtime registered, and registered in a way sandbot accepts? */
export function judgeRegistration(
  plan: LayerPlan,
  runtimes: Record<string, RegisteredRuntime>,
): Registration {
  if (!plan.runtime) return { ok: true, args: [], egress: 'bridge' };
  const found = runtimes[plan.runtime];
  if (!found) {
    const known = Object.keys(runtimes).join(', ') || 'none listed';
    return {
      ok: false,
      reason: `the engine has no runtime "${plan.runtime}" (it has: ${known})`,
      fix: registrationHint(plan.runtime),
    };
  }
  const args = found.runtimeArgs ?? [];
  if (!plan.gvisor) return { ok: true, args, egress: 'bridge' };
  const mode = networkMode(args);
  if (mode === 'host') {
    // runsc's host mode hands every socket call of the sandbox to the host's kernel: not gVisor's isolation.
    return {
      ok: false,
      reason: `runtime "${plan.runtime}" is registered with --network=host, which passes the sandbox's sockets to the host kernel`,
      fix: `register it with "runtimeArgs": ["--network=none"] in /etc/docker/daemon.json and reload the engine (\`kill -HUP $(pidof dockerd)\`)`,
    };
  }
  // Without a network device (--network=none, and the netstack that Debian's runsc of 2022 refuses on
  // newer kernels) a granted sandbox reaches the proxy through its protocol stream instead.
  return { ok: true, args, egress: mode === 'none' ? 'tunnel' : 'bridge' };
}

/** runsc's --network flag among the registered arguments (sandbox when absent, as runsc defaults). */
export function networkMode(args: readonly string[]): string {
  let mode = 'sandbox';
  args.forEach((arg, i) => {
    const inline = /^--?network=(.+)$/.exec(arg);
    if (inline?.[1]) mode = inline[1];
    else if (/^--?network$/.test(arg) && args[i + 1]) mode = args[i + 1] as string;
  });
  return mode;
}

/**
 * The probe's script: `ls` works (gVisor's statx), node starts (threads), no user namespace can be
 * made (the seccomp profile is in force), and the kernel says what it is.
 */
export const PROBE_SCRIPT = [
  'ls / >/dev/null || { echo "probe: ls failed"; exit 3; }',
  'if unshare -U true 2>/dev/null; then echo "probe: a user namespace could be made"; exit 5; fi',
  `node -e 'process.stdout.write("node-ok\\n")' || exit 4`,
  'echo "kernel: $(uname -r)"',
  'dmesg 2>/dev/null | head -n 1',
].join('\n');

export interface ProbeResult {
  exitCode: number;
  output: string;
}

/** Did the probe container show what the plan promises? Undefined when yes, else the reason. */
export function judgeProbe(plan: LayerPlan, result: ProbeResult): string | undefined {
  const runtime = plan.runtime ?? 'the default runtime';
  const said = result.output.trim().split('\n').slice(-6).join(' | ').slice(0, 600);
  if (result.exitCode === 3 && plan.gvisor) {
    return (
      `under ${runtime}, \`ls\` fails on every path (this gVisor release refuses statx's AT_NO_AUTOMOUNT) ` +
      'and the sandbox image has no statx shim: install a C compiler (`apt-get install gcc`) and rebuild the ' +
      `image (\`sandbot image build\`), or install a gVisor release from 2023 or later (${said})`
    );
  }
  if (result.exitCode === 5) {
    return (
      `under ${runtime} the sandbox could make a user namespace: the runtime does not apply the sandbox's ` +
      'seccomp profile (gVisor: register runsc with --oci-seccomp)'
    );
  }
  if (result.exitCode !== 0)
    return `a container of the sandbox image failed under ${runtime} (exit ${result.exitCode}): ${said}`;
  if (!result.output.includes('node-ok')) return `node did not run under ${runtime}: ${said}`;
  if (plan.gvisor && !/gVisor/.test(result.output)) {
    return `runtime "${runtime}" ran the container, but not under gVisor (the kernel said: ${said})`;
  }
  return undefined;
}

/** A throwaway container shaped like a sandbox (no volumes, no network) that runs the probe script. */
export function probeSpec(
  plan: LayerPlan,
  image: string,
  instance: string,
): Dockerode.ContainerCreateOptions {
  const memory = plan.memoryMb * 1024 * 1024;
  return {
    name: `${instance}-layer-probe-${randomBytes(4).toString('hex')}`,
    Image: image,
    Labels: { 'sandbot.instance': instance, 'sandbot.kind': 'layer-probe' },
    User: '1000:1000',
    Env: plan.env,
    Entrypoint: ['sh', '-c'],
    Cmd: [PROBE_SCRIPT],
    HostConfig: {
      NetworkMode: 'none',
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': 'rw,noexec,nosuid,nodev,size=16m' },
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges', ...plan.securityOpt],
      Memory: memory,
      MemorySwap: memory,
      PidsLimit: plan.pidsLimit,
      ...(plan.nproc ? { Ulimits: [{ Name: 'nproc', Soft: plan.nproc, Hard: plan.nproc }] } : {}),
      Init: true,
      ...(plan.runtime ? { Runtime: plan.runtime } : {}),
      RestartPolicy: { Name: 'no' },
    },
  };
}

/** Splits the engine's multiplexed log stream (8-byte frame headers) into plain text. */
export function demuxLogs(raw: Buffer): string {
  const parts: Buffer[] = [];
  let at = 0;
  while (at + 8 <= raw.length) {
    const size = raw.readUInt32BE(at + 4);
    parts.push(raw.subarray(at + 8, at + 8 + size));
    at += 8 + size;
  }
  return Buffer.concat(parts).toString('utf8');
}

export interface CheckLayerOptions {
  docker: Dockerode;
  /** The engine's address (DOCKER_HOST), which keys the remembered verdicts. */
  endpoint?: string;
  image: string;
  instance: string;
  /** `always` (doctor): run the probe even for the engine's default runtime; `needed` (worker): only for a named one. */
  probe?: 'always' | 'needed';
  timeoutMs?: number;
  /** The micro-VM's own check (sandbox/host/vm); without it the micro-VM layer is refused. */
  guest?: (plan: LayerPlan) => Promise<LayerVerdict>;
}

const passed = new Map<string, LayerVerdict>();

/** Checks the plan once per process and engine (a passed check is remembered; a failed one is not). */
export async function checkLayer(plan: LayerPlan, options: CheckLayerOptions): Promise<LayerVerdict> {
  if (plan.engine === 'guest') {
    if (options.guest) return options.guest(plan);
    return {
      ok: false,
      plan,
      reason: 'micro-VM layer not available: no micro-VM engine is running for this worker',
      fix: 'run `sandbot vm build` (and see the README, Layers), or set SANDBOX_LAYER=gvisor or container',
    };
  }
  const probe = options.probe ?? 'needed';
  const key = JSON.stringify([options.endpoint ?? 'default', plan, options.image, probe]);
  const known = passed.get(key);
  if (known) return known;
  const verdict = await checkLocal(plan, options, probe);
  if (verdict.ok) passed.set(key, verdict);
  return verdict;
}

async function checkLocal(
  plan: LayerPlan,
  options: CheckLayerOptions,
  probe: 'always' | 'needed',
): Promise<LayerVerdict> {
  if (!plan.runtime && probe === 'needed') {
    return { ok: true, plan, detail: "the engine's default runtime", egress: 'bridge' };
  }
  let runtimes: Record<string, RegisteredRuntime>;
  try {
    const info = (await options.docker.info()) as { Runtimes?: Record<string, RegisteredRuntime> };
    runtimes = info.Runtimes ?? {};
  } catch (error) {
    return { ok: false, plan, reason: `cannot ask the engine which runtimes it has: ${messageOf(error)}` };
  }
  const registration = judgeRegistration(plan, runtimes);
  if (!registration.ok) return { ok: false, plan, reason: registration.reason, fix: registration.fix };
  const began = performance.now();
  let result: ProbeResult;
  try {
    result = await runProbe(
      options.docker,
      probeSpec(plan, options.image, options.instance),
      options.timeoutMs ?? 60_000,
    );
  } catch (error) {
    const message = messageOf(error);
    const missing = /no such image/i.test(message);
    return {
      ok: false,
      plan,
      reason: `a container of ${options.image} could not run under ${plan.runtime ?? 'the default runtime'}: ${message}`,
      fix: missing ? 'run `sandbot image build`' : plan.runtime ? registrationHint(plan.runtime) : undefined,
    };
  }
  const refused = judgeProbe(plan, result);
  if (refused)
    return {
      ok: false,
      plan,
      reason: refused,
      fix: plan.runtime ? registrationHint(plan.runtime) : undefined,
    };
  const seconds = ((performance.now() - began) / 1000).toFixed(1);
  const args = registration.args.length > 0 ? ` ${registration.args.join(' ')}` : '';
  const where = plan.runtime
    ? `${plan.runtime} (${runtimes[plan.runtime]?.path ?? '?'}${args})`
    : 'the default runtime';
  return {
    ok: true,
    plan,
    detail: `${where} ran a container of ${options.image}${plan.gvisor ? ' under gVisor' : ''} in ${seconds} s`,
    egress: registration.egress,
  };
}

async function runProbe(
  docker: Dockerode,
  spec: Dockerode.ContainerCreateOptions,
  timeoutMs: number,
): Promise<ProbeResult> {
  const container = await docker.createContainer(spec);
  let timer: NodeJS.Timeout | undefined;
  try {
    await container.start();
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the probe container did not finish within ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
    });
    const { StatusCode } = (await Promise.race([container.wait(), late])) as { StatusCode: number };
    const logs = (await container.logs({ stdout: true, stderr: true })) as unknown as Buffer;
    return { exitCode: StatusCode, output: demuxLogs(logs) };
  } finally {
    clearTimeout(timer);
    await container.remove({ force: true }).catch(() => undefined);
  }
}

function messageOf(error: unknown): string {
  const e = error as { json?: { message?: string }; message?: string };
  return (e?.json?.message ?? e?.message ?? String(error)).replace(/\s+/g, ' ').trim();
}
