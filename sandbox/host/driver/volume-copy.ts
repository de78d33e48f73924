import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Dockerode from 'dockerode';
import type { ConversationId } from '../../../src/contracts/conversation/id.js';
import { sandboxLabels, sandboxNames, volumeSpecs } from './docker-spec.js';

/** A copy's bounds: archive bytes streamed in all (headers included) and wall time. */
export interface CopyBudget {
  maxBytes: number;
  maxMs: number;
}

export interface CopyResult {
  volumes: string[];
  bytes: number;
}

/**
 * Copies a conversation's /workspace and /session volumes from one engine to another through their
 * archive APIs (what `docker cp` uses): a helper container on each side that never runs mounts the
 * volume; the source's archive streams into the target's, counted and cut at the budget. The target's
 * leftovers of the conversation (an old sandbox, old volumes) are replaced; the source is not touched
 * (the caller removes it once the conversation's home has moved). Docker volumes only: size-capped
 * volumes are loop-mounted images on their worker's machine, which no engine API copies.
 */
export async function copyConversationVolumes(
  engines: { from: Dockerode; to: Dockerode },
  instance: string,
  conversation: ConversationId,
  image: string,
  budget: CopyBudget,
): Promise<CopyResult> {
  const names = sandboxNames(instance, conversation);
  const signal = AbortSignal.timeout(budget.maxMs);
  await engines.from
    .getContainer(names.container)
    .stop({ t: 5 })
    .catch(() => undefined);
  await engines.to
    .getContainer(names.container)
    .remove({ force: true })
    .catch(() => undefined);
  const counted = { bytes: 0 };
  const volumes: string[] = [];
  for (const spec of volumeSpecs(instance, conversation)) {
    const name = spec.Name as string;
    const found = await engines.from
      .getVolume(name)
      .inspect()
      .then(
        () => true,
        () => false,
      );
    if (!found) {
      if (name === names.workspaceVolume)
        throw new Error(
          `no Docker volume ${name} on the source engine (size-capped workspaces are not copied)`,
        );
      continue;
    }
    await engines.to
      .getVolume(name)
      .remove()
      .catch(() => undefined);
    await engines.to.createVolume({ Name: name, Labels: sandboxLabels(instance, conversation) });
    await copyOne(engines, name, image, { budget, signal, counted });
    volumes.push(name);
  }
  return { volumes, bytes: counted.bytes };
}

async function copyOne(
  engines: { from: Dockerode; to: Dockerode },
  volume: string,
  image: string,
  run: { budget: CopyBudget; signal: AbortSignal; counted: { bytes: number } },
): Promise<void> {
  const helper = (readOnly: boolean): Dockerode.ContainerCreateOptions => ({
    Image: image,
    Cmd: ['true'],
    Labels: { 'sandbot.kind': 'volume-copy' },
    NetworkDisabled: true,
    HostConfig: {
      NetworkMode: 'none',
      Mounts: [{ Type: 'volume', Source: volume, Target: '/v', ReadOnly: readOnly }],
    },
  });
  const source = await engines.from.createContainer(helper(true));
  try {
    const target = await engines.to.createContainer(helper(false));
    try {
      const archive = (await source.getArchive({ path: '/v' })) as NodeJS.ReadableStream;
      const meter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          run.counted.bytes += chunk.length;
          if (run.counted.bytes > run.budget.maxBytes)
            return done(new Error(`more than ${run.budget.maxBytes} bytes to copy: stopped`));
          done(null, chunk);
        },
      });
      // The tar's entries are v/…: unpacked at / they land in the target's volume, owners and modes kept.
      const put = target.putArchive(meter, { path: '/' });
      await Promise.all([pipeline(archive, meter, { signal: run.signal }), put]);
    } finally {
      await target.remove({ force: true }).catch(() => undefined);
    }
  } finally {
    await source.remove({ force: true }).catch(() => undefined);
  }
}

/** Removes the conversation's sandbox and volumes from an engine (the source, once the copy is home). */
export async function removeConversation(
  docker: Dockerode,
  instance: string,
  conversation: ConversationId,
): Promise<void> {
  const names = sandboxNames(instance, conversation);
  await docker
    .getContainer(names.container)
    .remove({ force: true })
    .catch(() => undefined);
  for (const spec of volumeSpecs(instance, conversation)) {
    await docker
      .getVolume(spec.Name as string)
      .remove()
      .catch(() => undefined);
  }
}
