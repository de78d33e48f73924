import type Dockerode from 'dockerode';
import type { ConversationId } from '../../../src/contracts/conversation/id.js';
import type { Logger } from '../../../src/contracts/log/logger.js';
import { ensureQuotaMount, removeQuotaMount } from './disk-quota.js';
import { conversationVolumes } from './docker-pool-claim.js';
import {
  containerSpec,
  NETWORK_LABEL,
  type QuotaPaths,
  RUNTIME_LABEL,
  runtimeLabel,
  type SandboxLimits,
  SKILLS_LABEL,
  sandboxNames,
  volumeSpecs,
} from './docker-spec.js';
import { ensureEngineQuotaMounts, removeEngineQuotaMounts } from './engine-quota.js';
import type { OpenOptions, WorkspaceSeed } from './types.js';

/** One sandbox container as the engine shows it: what open() decides on. */
export interface ContainerState {
  Running: boolean;
  network: string;
  runtime: string;
  skills: string;
  id: string;
}

/** Looks (100 ms apart) for a container another worker is still creating. */
const CREATE_RACE_ATTEMPTS = 50;

export function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number } | undefined)?.statusCode;
}

export function messageOf(err: unknown): string {
  const e = err as { json?: { message?: string }; message?: string };
  return e?.json?.message ?? e?.message ?? String(err);
}

/**
 * Why an existing sandbox cannot serve an open as it is, or undefined when it can. Made under another
 * layer's runtime it is never reused under a weaker (or different) one; a changed network policy or
 * set of skills needs new container settings. Its volumes, so its files, stay either way.
 */
export function recreateReason(
  state: Pick<ContainerState, 'runtime' | 'network' | 'skills'>,
  wanted: { runtime: string; network: string; skills?: string },
): string | undefined {
  if (state.runtime !== wanted.runtime) return 'sandbox layer changed';
  if (state.network !== wanted.network) return 'network policy changed';
  if (wanted.skills !== undefined && state.skills !== wanted.skills) return 'skills changed';
  return undefined;
}

/** What open() decides on, from a container's labels (those of an inspect, or of the spec it was made from). */
export function stateFromLabels(
  id: string,
  running: boolean,
  labels: Record<string, string> | undefined,
): ContainerState {
  return {
    Running: running,
    network: labels?.[NETWORK_LABEL] ?? 'none',
    skills: labels?.[SKILLS_LABEL] ?? 'none',
    id,
    // Containers made before the label existed ran under the engine's default runtime.
    runtime: labels?.[RUNTIME_LABEL] ?? runtimeLabel(undefined),
  };
}

export async function inspectState(container: Dockerode.Container): Promise<ContainerState | undefined> {
  try {
    const info = await container.inspect();
    return stateFromLabels(info.Id, info.State.Running, info.Config.Labels);
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw new Error(`could not inspect sandbox ${container.id}: ${messageOf(err)}`);
  }
}

/**
 * After a create race the engine has reserved the name (our create got 409) but may not show the
 * other worker's container yet: look again briefly before giving up.
 */
export async function inspectAfterCreate(container: Dockerode.Container): Promise<ContainerState> {
  for (let attempt = 0; attempt < CREATE_RACE_ATTEMPTS; attempt++) {
    const state = await inspectState(container);
    if (state !== undefined) return state;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`sandbox container ${container.id} vanished right after it was created`);
}

/**
 * Creates the conversation's volumes and container. Returns the new container's state (what an inspect
 * would say now: made from this spec, not started), or undefined when another worker created it first.
 */
export async function createSandbox(
  docker: Dockerode,
  limits: SandboxLimits,
  conversation: ConversationId,
  options: OpenOptions & { quota?: QuotaPaths },
  logger?: Logger,
): Promise<ContainerState | undefined> {
  // Creating a volume that exists returns it unchanged, so a concurrent open is harmless here; the two
  // volumes are independent, so made at once.
  await Promise.all(volumeSpecs(limits.instance, conversation).map((volume) => docker.createVolume(volume)));
  const spec = containerSpec(limits, conversation, options.network, options.quota, options.skills);
  try {
    const created = await docker.createContainer(spec);
    logger?.info({ conversation, container: spec.name }, 'sandbox created');
    return stateFromLabels(created.id, false, spec.Labels);
  } catch (err) {
    // 409: another worker created it between our inspect and create; use theirs.
    if (statusOf(err) === 409) return undefined;
    if (statusOf(err) === 404) {
      throw new Error(
        `sandbox image "${limits.image}" is not on the container engine: ` +
          'build it with `npm run build && sandbot image build` (scripts/setup.sh does both)',
      );
    }
    throw new Error(`could not create sandbox ${spec.name}: ${messageOf(err)}`);
  }
}

/** Size-capped volumes are loop mounts on the engine's host: (re)mounted before the container starts. */
export async function quotaPaths(
  docker: Dockerode,
  limits: SandboxLimits,
  conversation: ConversationId,
  seed?: WorkspaceSeed,
): Promise<QuotaPaths | undefined> {
  const disk = limits.disk;
  if (!disk) return undefined;
  const names = sandboxNames(limits.instance, conversation);
  if (disk.onEngine) {
    const [workspace, session] = await ensureEngineQuotaMounts(
      docker,
      limits.image,
      limits.instance,
      disk.root,
      [
        { name: names.workspaceVolume, sizeMb: disk.workspaceMb, folders: ['inbox', 'outbox'] },
        { name: names.sessionVolume, sizeMb: disk.sessionMb },
      ],
    );
    return { workspace: workspace as string, session: session as string };
  }
  // Both at once: independent images (a burst of new conversations waits on each one's formatting).
  const [workspace, session] = await Promise.all([
    ensureQuotaMount(disk.root, names.workspaceVolume, disk.workspaceMb, ['inbox', 'outbox'], seed),
    ensureQuotaMount(disk.root, names.sessionVolume, disk.sessionMb),
  ]);
  return { workspace, session };
}

/** Removes a conversation's volumes (and capped images); `mounted`: the pooled ones its container used. */
export async function removeVolumes(
  docker: Dockerode,
  limits: SandboxLimits,
  names: ReturnType<typeof sandboxNames>,
  mounted: string[],
): Promise<boolean> {
  let removed = false;
  if (limits.disk?.onEngine) {
    removed = await removeEngineQuotaMounts(docker, limits.image, limits.instance, limits.disk.root, [
      names.workspaceVolume,
      names.sessionVolume,
    ]);
  } else if (limits.disk) {
    for (const volume of [names.workspaceVolume, names.sessionVolume]) {
      removed = (await removeQuotaMount(limits.disk.root, volume)) || removed;
    }
  }
  for (const volume of await conversationVolumes(docker, limits.instance, names, mounted)) {
    try {
      await docker.getVolume(volume).remove();
      removed = true;
    } catch (err) {
      if (statusOf(err) !== 404) throw new Error(`could not remove volume ${volume}: ${messageOf(err)}`);
    }
  }
  return removed;
}
