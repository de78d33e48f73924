import type Dockerode from 'dockerode';
import type { ConversationId } from '../../../src/contracts/conversation/id.js';
import type { Logger } from '../../../src/contracts/log/logger.js';
import { linkQuotaName, unlinkQuotaName } from './disk-quota-link.js';
import { DATA_VOLUME_LABEL, isPoolVolume, type PooledSandbox, type PoolSource } from './docker-pool.js';
import { type SandboxNames, sandboxLabels, sandboxNames } from './docker-spec.js';

/** How a conversation takes a pooled sandbox, and what that means for its volumes (docker-pool.ts). */

const statusOf = (err: unknown) => (err as { statusCode?: number } | undefined)?.statusCode;

/** Whether the conversation has volumes of its own (files kept after `rm`, or a layer change). */
export function hasOwnVolumes(
  docker: Dockerode,
  instance: string,
  conversation: ConversationId,
): Promise<boolean> {
  return docker
    .getVolume(sandboxNames(instance, conversation).workspaceVolume)
    .inspect()
    .then(
      () => true,
      (err: unknown) => statusOf(err) !== 404,
    );
}

/**
 * Gives a new conversation a sandbox from the pool: the one it took, now the conversation's (canary
 * and baseline handed over too), or undefined when there is none to take or the conversation has
 * volumes of its own (`ownVolumes`: then those are used instead).
 */
export async function claimFromPool(
  docker: Dockerode,
  instance: string,
  pool: PoolSource,
  conversation: ConversationId,
  ownVolumes: Promise<boolean>,
  logger?: Logger,
  diskRoot?: string,
): Promise<PooledSandbox | undefined> {
  const names = sandboxNames(instance, conversation);
  const sandbox = (await ownVolumes) ? undefined : pool.take();
  if (!sandbox) return undefined;
  try {
    await claimPooledSandbox(docker, instance, sandbox, conversation, diskRoot);
  } catch (err) {
    logger?.warn({ err, conversation, pooled: sandbox.name }, 'pooled sandbox not claimed; creating one');
    pool.discard(sandbox);
    return undefined;
  }
  await pool.claimed(conversation, sandbox);
  logger?.info({ conversation, container: names.container, pooled: sandbox.name }, 'pooled sandbox claimed');
  return sandbox;
}

/**
 * Makes the pooled sandbox the conversation's (see docker-pool.ts); undoes step 1 if 2 fails. A capped
 * one's (`diskRoot`) conversation volumes are plain (its files are in the images), and its image names
 * are linked to the pooled images between the two steps.
 */
export async function claimPooledSandbox(
  docker: Dockerode,
  instance: string,
  sandbox: PooledSandbox,
  conversation: ConversationId,
  diskRoot?: string,
): Promise<void> {
  const names = sandboxNames(instance, conversation);
  const labels = sandboxLabels(instance, conversation);
  const capped = sandbox.capped === true;
  if (capped && !diskRoot) throw new Error('a capped pooled sandbox needs the disk folder to be claimed');
  const binds: [name: string, data: string, device: string][] = [
    [names.workspaceVolume, sandbox.workspaceVolume, sandbox.workspaceData],
    [names.sessionVolume, sandbox.sessionVolume, sandbox.sessionData],
  ];
  const made = await Promise.allSettled(
    binds.map(([name, data, device]) =>
      docker.createVolume({
        Name: name,
        Labels: { ...labels, [DATA_VOLUME_LABEL]: data },
        Driver: 'local',
        ...(capped ? {} : { DriverOpts: { type: 'none', o: 'bind', device } }),
      }),
    ),
  );
  const linked: string[] = [];
  try {
    const failed = made.find((m) => m.status === 'rejected');
    if (failed) throw failed.reason;
    for (const [name, data] of binds) {
      if (!capped || !diskRoot) break;
      await linkQuotaName(diskRoot, name, data);
      linked.push(name);
    }
    await docker.getContainer(sandbox.name).rename({ name: names.container });
  } catch (error) {
    for (const name of linked) await unlinkQuotaName(diskRoot as string, name).catch(() => undefined);
    for (const [i, m] of made.entries()) {
      const name = binds[i]?.[0];
      if (m.status === 'fulfilled' && name)
        await docker
          .getVolume(name)
          .remove()
          .catch(() => undefined);
    }
    throw error;
  }
}

/** Volumes the container mounts (none when it is gone). */
export async function mountedVolumes(docker: Dockerode, name: string): Promise<string[]> {
  try {
    const info = await docker.getContainer(name).inspect();
    return (info.Mounts ?? []).flatMap((m) => (m.Type === 'volume' && m.Name ? [m.Name] : []));
  } catch (err) {
    if (statusOf(err) === 404) return [];
    throw err;
  }
}

/**
 * The volumes that hold a conversation's files, in the order to remove them: its own names first (a
 * claimed sandbox's are bind volumes), then the pooled volumes they bind onto, then any pooled volume
 * its container still mounts. Never a volume of another kind (skills, other conversations).
 */
export async function conversationVolumes(
  docker: Dockerode,
  instance: string,
  names: SandboxNames,
  mounted: string[],
): Promise<string[]> {
  const volumes = [names.workspaceVolume, names.sessionVolume];
  for (const own of [names.workspaceVolume, names.sessionVolume]) {
    try {
      const info = (await docker.getVolume(own).inspect()) as { Labels?: Record<string, string> };
      const data = info.Labels?.[DATA_VOLUME_LABEL];
      if (data && isPoolVolume(instance, data)) volumes.push(data);
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) throw error;
    }
  }
  for (const volume of mounted) if (isPoolVolume(instance, volume)) volumes.push(volume);
  return [...new Set(volumes)];
}
