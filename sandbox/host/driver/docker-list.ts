import type Dockerode from 'dockerode';
import { ConversationId } from '../../../src/contracts/conversation/id.js';
import { DATA_VOLUME_LABEL, POOL_KIND } from './docker-pool.js';
import { instanceFilter, sandboxNames } from './docker-spec.js';
import type { SandboxInfo } from './types.js';

/**
 * The instance's sandboxes on the engine, each with its conversation: from its label, or, for one
 * claimed from the warm pool (whose labels stay the pool's), from the labels of its bind volumes.
 */
export async function listSandboxes(docker: Dockerode, instance: string): Promise<SandboxInfo[]> {
  const [containers, pooled] = await Promise.all([
    docker.listContainers({ all: true, filters: instanceFilter(instance) }),
    docker.listContainers({
      all: true,
      filters: { label: [`sandbot.instance=${instance}`, `sandbot.kind=${POOL_KIND}`] },
    }),
  ]);
  const nameOf = (c: Dockerode.ContainerInfo) => (c.Names[0] ?? '').replace(/^\//, '');
  const claimed = pooled.some((c) => !nameOf(c).startsWith(`${instance}-pool-`))
    ? await claimedConversations(docker, instance)
    : new Map<string, ConversationId>();
  const infos: SandboxInfo[] = [];
  for (const c of [...containers, ...pooled]) {
    const name = nameOf(c);
    const conversation = ConversationId.safeParse(c.Labels['sandbot.conversation'] ?? claimed.get(name));
    if (!conversation.success) continue;
    infos.push({
      conversation: conversation.data,
      containerId: c.Id,
      name,
      state: c.State,
      createdAt: new Date(c.Created * 1000).toISOString(),
      ...(c.Labels['sandbot.kind'] === POOL_KIND ? { pooled: true } : {}),
    });
  }
  return infos;
}

/** Claimed sandboxes' conversations by container name, from their bind volumes' labels. */
export async function claimedConversations(
  docker: Dockerode,
  instance: string,
): Promise<Map<string, ConversationId>> {
  const { Volumes } = await docker.listVolumes({
    filters: { label: [`sandbot.instance=${instance}`, DATA_VOLUME_LABEL] },
  });
  const byContainer = new Map<string, ConversationId>();
  for (const volume of Volumes ?? []) {
    const conversation = ConversationId.safeParse(volume.Labels?.['sandbot.conversation']);
    if (!conversation.success) continue;
    const names = sandboxNames(instance, conversation.data);
    if (volume.Name === names.workspaceVolume) byContainer.set(names.container, conversation.data);
  }
  return byContainer;
}

/** Running sandboxes of the instance: conversations' (claimed ones included) and the warm pool's. */
export async function countRunning(
  docker: Dockerode,
  instance: string,
): Promise<{ sandboxes: number; pooled: number }> {
  const running = await docker.listContainers({ filters: { label: [`sandbot.instance=${instance}`] } });
  let sandboxes = 0;
  let pooled = 0;
  for (const c of running) {
    const kind = c.Labels['sandbot.kind'];
    const waiting =
      kind === POOL_KIND && (c.Names[0] ?? '').replace(/^\//, '').startsWith(`${instance}-pool-`);
    if (waiting) pooled += 1;
    else if (kind === 'sandbox' || kind === POOL_KIND) sandboxes += 1;
  }
  return { sandboxes, pooled };
}
