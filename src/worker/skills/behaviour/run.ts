import { randomBytes } from 'node:crypto';
import type Dockerode from 'dockerode';
import { SANDBOX_USER } from '../../../../sandbox/host/driver/docker-spec.js';
import type { LayerPlan } from '../../../../sandbox/host/layers/layer.js';
import { shortHash } from '../../../contracts/conversation/id.js';
import type { SkillFile } from '../hashing.js';
import type { SkillManifest } from '../manifest.js';
import { canaryEntries, newCanaries, toolEnv } from './canaries.js';
import { type Canary, observeTool, type RecorderRecord, type ToolRun } from './observe.js';
import type { BehaviourReport } from './report.js';
import { LAUNCHER, PROXY_PORT, RECORD_LOG, RECORDER, tracedCommand } from './scripts.js';
import { BEHAVIOUR_VERSION } from './version.js';
import {
  execDetached,
  execIn,
  fillVolume,
  hostStrace,
  removeStale,
  tarOf,
  vetContainerSpec,
} from './vet-container.js';

/**
 * One behavioural run: a throwaway sandbox (`vet:<skill>@<version>:<random>`) under the worker's layer,
 * no network and nothing granted, canaries planted, the recorder started as root, then each tool run
 * once under strace with its example arguments; the sandbox and its volumes are removed whatever happens.
 */

export interface VetEngine {
  docker: Dockerode;
  instance: string;
  image: string;
  plan: LayerPlan;
  cpus: number;
  tmpMb: number;
}

export interface VetSubject {
  manifest: SkillManifest;
  files: readonly SkillFile[];
}

/** Longest one tool may run while vetted, whatever its manifest asks. */
export const VET_TOOL_SECONDS = 30;
const STALE_MS = 15 * 60_000;
/** The watch of resident memory kills a tool past twice its memory limit and this (code and libraries). */
const RSS_HEADROOM_MB = 64;

export async function runBehaviour(engine: VetEngine, subject: VetSubject): Promise<BehaviourReport> {
  const started = Date.now();
  const { docker, instance, image, plan } = engine;
  const m = subject.manifest;
  const id = `vet:${m.name}@${m.version}:${randomBytes(4).toString('hex')}`;
  const key = shortHash(id);
  const labels = { 'sandbot.instance': instance, 'sandbot.kind': 'vet', 'sandbot.vet': id };
  await removeStale(docker, instance, STALE_MS).catch(() => undefined);
  const strace = await hostStrace();
  const toolsVolume = `${instance}-vet-tools-${strace.digest}`;
  await fillVolume(docker, image, toolsVolume, { ...labels, 'sandbot.vet': 'tools' }, strace.entries);
  const skillVolume = `${instance}-vet-skill-${key}`;
  const workspaceVolume = `${instance}-vet-ws-${key}`;
  const canaries = newCanaries();
  let container: Dockerode.Container | undefined;
  try {
    await fillVolume(docker, image, skillVolume, labels, skillEntries(subject));
    await docker.createVolume({ Name: workspaceVolume, Labels: labels });
    container = await docker.createContainer(
      vetContainerSpec({
        name: `${instance}-vet-${key}`,
        image,
        plan,
        cpus: engine.cpus,
        tmpMb: engine.tmpMb,
        labels,
        workspaceVolume,
        toolsVolume,
        skill: { name: m.name, volume: skillVolume },
      }),
    );
    await container.putArchive(tarOf(canaryEntries(canaries)), { path: '/workspace' });
    await container.start();
    await startRecorder(docker, container);
    await checkTracer(docker, container, strace.loader);
    const tools = [];
    const findings = [];
    let seen = 0;
    for (const tool of m.tools) {
      const run = await runTool(engine, container, subject, tool, canaries, strace.loader);
      const records = await readRecords(docker, container);
      run.records = records.slice(seen).filter((r) => r.kind !== 'ready');
      seen = records.length;
      const observed = observeTool(run, { grants: m.permissions.hosts, canaries });
      tools.push(observed.behaviour);
      findings.push(...observed.findings);
    }
    const ms = Date.now() - started;
    return {
      version: BEHAVIOUR_VERSION,
      status: 'ran',
      layer: plan.layer,
      at: new Date().toISOString(),
      ms,
      tools,
      findings,
    };
  } finally {
    await container?.remove({ force: true }).catch(() => undefined);
    for (const volume of [workspaceVolume, skillVolume]) {
      await docker
        .getVolume(volume)
        .remove()
        .catch(() => undefined);
    }
  }
}

function skillEntries(subject: VetSubject) {
  const run = new Set(subject.manifest.tools.map((t) => t.run));
  const dirs = new Set<string>();
  for (const f of subject.files) {
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  return [
    ...[...dirs].sort().map((name) => ({ name, mode: 0o755, dir: true })),
    ...subject.files.map((f) => ({ name: f.path, bytes: f.bytes, mode: run.has(f.path) ? 0o755 : 0o644 })),
  ];
}

async function startRecorder(docker: Dockerode, container: Dockerode.Container): Promise<void> {
  await execDetached(container, ['python3', '-c', RECORDER], '0:0');
  for (let i = 0; i < 50; i++) {
    if ((await readRecords(docker, container)).some((r) => r.kind === 'ready')) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the vetting sandbox’s recorder did not start');
}

/** This host's strace must run in the sandbox (same CPU architecture): else the run is refused. */
async function checkTracer(docker: Dockerode, container: Dockerode.Container, loader: string): Promise<void> {
  const cmd = [...tracedCommand([], loader).slice(0, 4), '-V'];
  const result = await execIn(docker, container, { cmd, user: SANDBOX_USER, timeoutMs: 15_000 });
  if (result.code !== 0) {
    const why = (result.stderr || result.stdout).trim().slice(0, 300);
    throw new Error(`this host's strace cannot run in the vetting sandbox (${why || `exit ${result.code}`})`);
  }
}

async function readRecords(docker: Dockerode, container: Dockerode.Container): Promise<RecorderRecord[]> {
  const { stdout } = await execIn(docker, container, {
    cmd: ['cat', RECORD_LOG],
    user: '0:0',
    timeoutMs: 10_000,
  });
  return stdout
    .split('\n')
    .filter(Boolean)
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as RecorderRecord];
      } catch {
        return [];
      }
    });
}

async function runTool(
  engine: VetEngine,
  container: Dockerode.Container,
  subject: VetSubject,
  tool: SkillManifest['tools'][number],
  canaries: readonly Canary[],
  loader: string,
): Promise<ToolRun> {
  const script = `/skills/${subject.manifest.name}/${tool.run}`;
  const args = JSON.stringify(tool.example ?? {});
  const timeoutS = Math.min(subject.manifest.permissions.timeoutSeconds, VET_TOOL_SECONDS);
  const spec = {
    argv: tracedCommand(tool.interpreter ? [tool.interpreter, script] : [script], loader),
    input: args,
    timeoutS,
    memKb: subject.manifest.permissions.memoryMb * 1024,
    rssKb: (subject.manifest.permissions.memoryMb * 2 + RSS_HEADROOM_MB) * 1024,
    outBytes: 64 * 1024,
    traceBytes: 8 * 1024 * 1024,
  };
  const result = await execIn(engine.docker, container, {
    cmd: ['python3', '-c', LAUNCHER, JSON.stringify(spec)],
    user: SANDBOX_USER,
    env: toolEnv(canaries, `http://127.0.0.1:${PROXY_PORT}`),
    timeoutMs: (timeoutS + 20) * 1000,
  });
  const base = { tool: tool.name, args, records: [] };
  try {
    const out = JSON.parse(result.stdout) as Omit<ToolRun, 'tool' | 'args' | 'records'> & {
      exit: number | null;
    };
    return {
      ...base,
      exitCode: out.exit,
      timedOut: out.timedOut,
      overMemory: out.overMemory === true,
      ms: out.ms,
      maxRssKb: out.maxRssKb,
      output: out.output,
      trace: out.trace,
    };
  } catch {
    const why = `${result.stderr || result.stdout}`.slice(0, 400);
    return {
      ...base,
      exitCode: result.code,
      timedOut: false,
      overMemory: false,
      ms: 0,
      maxRssKb: 0,
      output: `(the launcher failed: ${why})`,
      trace: '',
    };
  }
}
