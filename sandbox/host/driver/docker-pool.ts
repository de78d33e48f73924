import { randomBytes } from 'node:crypto';
import type Dockerode from 'dockerode';
import { ConversationId } from '../../../src/contracts/conversation/id.js';
import { removeQuotaMount } from './disk-quota.js';
import {
  containerSpec,
  type QuotaPaths,
  type SandboxLimits,
  type SandboxNames,
  SESSION_DIR,
  WORKSPACE_DIR,
} from './docker-spec.js';
import type { WorkspaceSnapshot } from './workspace-snapshot.js';

/**
 * The warm pool's sandboxes on the engine. A pooled sandbox is a normal hardened sandbox made before
 * any conversation needs it: container `<instance>-pool-<id>` with its own two volumes, labelled
 * `sandbot.kind=pool` and with the worker that keeps it. A conversation claims one by
 *   1. creating its own volume names (`<instance>-ws-<key>`, `-sess-<key>`, labelled with the
 *      conversation) as bind volumes onto the pooled volumes' data, so any later container of the
 *      conversation (network change, `rm` without --wipe) mounts the same files, and
 *   2. renaming the container to the conversation's name, so stop, kill, rm and the archive calls
 *      find it as they find any sandbox.
 * Labels cannot change on a container, so a claimed one keeps `sandbot.kind=pool`; `list()` maps it to
 * its conversation through the labels of its bind volumes. A pooled sandbox is claimed once: the
 * rename addresses it by its pool name, which no longer exists after the first claim.
 * With size caps (on the worker's host) the pooled sandbox's /workspace and /session are capped images
 * named like its volumes, bind-mounted: a claim makes the conversation's (plain, empty, labelled)
 * volumes as for any capped sandbox and links the conversation's image names to the pooled ones
 * (disk-quota-link.ts), so every later lookup by the conversation finds them.
 */

export const POOL_KIND = 'pool';
export const POOL_OWNER_LABEL = 'sandbot.pool-owner';
/** On a conversation's bind volume: the pooled volume that holds its data. */
export const DATA_VOLUME_LABEL = 'sandbot.data-volume';
/** Fills the containerSpec call; its names and labels are replaced. */
const PLACEHOLDER = ConversationId.parse('web:sandbot-pool');

export interface PooledSandbox {
  /** The container's name while it waits in the pool. */
  name: string;
  containerId: string;
  owner: string;
  workspaceVolume: string;
  sessionVolume: string;
  /** Where the engine keeps those volumes' data (bind sources for the claiming conversation). */
  workspaceData: string;
  sessionData: string;
  /** /workspace as it was once ready (seed files in, nothing of any agent's). */
  snapshot: WorkspaceSnapshot;
  /** Its volumes are size-capped images (named workspaceVolume, sessionVolume), not Docker volumes. */
  capped?: boolean;
}

/** Where a driver gets pooled sandboxes from (the worker's warm pool). */
export interface PoolSource {
  /** A ready pooled sandbox, handed out once, or undefined when none is ready. */
  take(): PooledSandbox | undefined;
  /** It is now the conversation's (before its first turn). */
  claimed(conversation: ConversationId, sandbox: PooledSandbox): Promise<void>;
  /** It could not be claimed: the pool removes it. */
  discard(sandbox: PooledSandbox): void;
}

export interface PooledInfo {
  name: string;
  owner: string;
  containerId: string;
  state: string;
  createdAt: string;
}

export function poolNames(instance: string, id: string): SandboxNames {
  return {
    container: `${instance}-pool-${id}`,
    workspaceVolume: `${instance}-ws-pool-${id}`,
    sessionVolume: `${instance}-sess-pool-${id}`,
  };
}

const poolPrefix = (instance: string) => `${instance}-pool-`;
export const isPoolVolume = (instance: string, name: string) =>
  name.startsWith(`${instance}-ws-pool-`) || name.startsWith(`${instance}-sess-pool-`);

function poolLabels(instance: string, owner: string): Record<string, string> {
  return { 'sandbot.instance': instance, 'sandbot.kind': POOL_KIND, [POOL_OWNER_LABEL]: owner };
}

export const newPoolId = () => randomBytes(6).toString('hex');

/**
 * The hardened sandbox spec (no network) under a pool name: its plain volumes made with it, or its
 * size-capped images (`quota`, already mounted) bound in.
 */
export function pooledContainerSpec(
  limits: SandboxLimits,
  owner: string,
  id = newPoolId(),
  quota?: QuotaPaths,
): Dockerode.ContainerCreateOptions {
  const names = poolNames(limits.instance, id);
  const spec = containerSpec(limits, PLACEHOLDER, undefined, quota);
  const { 'sandbot.conversation': _, ...labels } = spec.Labels ?? {};
  const volumeLabels = poolLabels(limits.instance, owner);
  const sources: Record<string, string> = {
    [WORKSPACE_DIR]: names.workspaceVolume,
    [SESSION_DIR]: names.sessionVolume,
  };
  const mounts = (spec.HostConfig?.Mounts ?? []).map((mount) => {
    const source = mount.Type === 'volume' ? sources[mount.Target] : undefined;
    // The engine creates the volumes with the container, labelled, so none is left without one.
    const volumeOptions = {
      NoCopy: false,
      Labels: volumeLabels,
      DriverConfig: { Name: 'local', Options: {} },
    };
    return source ? { ...mount, Source: source, VolumeOptions: volumeOptions } : mount;
  });
  return {
    ...spec,
    name: names.container,
    Labels: { ...labels, ...volumeLabels },
    HostConfig: { ...spec.HostConfig, Mounts: mounts },
  };
}

/** Where the engine keeps a volume's data. */
export async function volumeData(docker: Dockerode, name: string): Promise<string> {
  const info = (await docker.getVolume(name).inspect()) as { Mountpoint?: string };
  if (!info.Mountpoint) throw new Error(`the engine did not say where volume ${name} lives`);
  return info.Mountpoint;
}

/** The pool's sandboxes still waiting (not claimed) on this engine, of every worker of the instance. */
export async function listPooled(docker: Dockerode, instance: string): Promise<PooledInfo[]> {
  const containers = await docker.listContainers({
    all: true,
    filters: { label: [`sandbot.instance=${instance}`, `sandbot.kind=${POOL_KIND}`] },
  });
  return containers
    .map((c) => ({ c, name: (c.Names[0] ?? '').replace(/^\//, '') }))
    .filter(({ name }) => name.startsWith(poolPrefix(instance)))
    .map(({ c, name }) => ({
      name,
      owner: c.Labels[POOL_OWNER_LABEL] ?? '',
      containerId: c.Id,
      state: c.State,
      createdAt: new Date(c.Created * 1000).toISOString(),
    }));
}

/**
 * Removes a waiting pooled sandbox by its pool name; false when there is none by that name (it was
 * claimed meanwhile, and is a conversation's now). Its volumes go too, unless a conversation's bind
 * volume points at them (a claim cut short after step 1: the data is that conversation's). With
 * `diskRoot`, its capped images too (on the same terms).
 */
export async function removePooledSandbox(
  docker: Dockerode,
  instance: string,
  name: string,
  diskRoot?: string,
): Promise<boolean> {
  if (!name.startsWith(poolPrefix(instance))) return false;
  let existed = true;
  try {
    await docker.getContainer(name).remove({ force: true });
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode !== 404) throw error;
    // Capped images may be left of a sandbox whose creation failed (a claimed one's are referenced).
    if (!diskRoot) return false;
    existed = false;
  }
  const names = poolNames(instance, name.slice(poolPrefix(instance).length));
  const { Volumes } = await docker.listVolumes({
    filters: { label: [`sandbot.instance=${instance}`, DATA_VOLUME_LABEL] },
  });
  const referenced = new Set((Volumes ?? []).map((v) => v.Labels?.[DATA_VOLUME_LABEL]));
  for (const volume of [names.workspaceVolume, names.sessionVolume]) {
    if (referenced.has(volume)) continue;
    if (diskRoot) await removeQuotaMount(diskRoot, volume);
    await docker
      .getVolume(volume)
      .remove()
      .catch((error: { statusCode?: number }) => {
        if (error.statusCode !== 404) throw error;
      });
  }
  return existed;
}
