import type Dockerode from 'dockerode';
import type { ConversationId } from '../../../src/contracts/conversation/id.js';
import type { Logger } from '../../../src/contracts/log/logger.js';
import {
  type ContainerState,
  createSandbox,
  inspectAfterCreate,
  inspectState,
  messageOf,
  quotaPaths,
  recreateReason,
  statusOf,
} from './docker-container.js';
import type { PoolSource } from './docker-pool.js';
import { claimFromPool, hasOwnVolumes } from './docker-pool-claim.js';
import { pooledDiskRoot } from './docker-pool-create.js';
import { type AttachedSession, attachRuntime } from './docker-session.js';
import { networkLabel, runtimeLabel, type SandboxLimits, sandboxNames, skillsLabel } from './docker-spec.js';
import type { AttachedAs } from './kept-sessions.js';
import type { OpenOptions, SandboxLifecycleEvent } from './types.js';

/** What opening a conversation's sandbox works with: the engine, the limits, and where events go. */
export interface OpenContext {
  docker: Dockerode;
  limits: SandboxLimits;
  maxLineBytes: number;
  bufferBytes: number | undefined;
  logger?: Logger;
  pool?: PoolSource;
  emit(event: SandboxLifecycleEvent): void;
}

/** Options a pooled sandbox already satisfies: no network, and no skill mounts (or none asked). */
function plainOpen({ seed: _seed, ...options }: OpenOptions): boolean {
  return Object.values(options).every((v) => v === undefined || (Array.isArray(v) && v.length === 0));
}

/**
 * Attaches to the conversation's container, running: reused as it is, recreated when its runtime,
 * network or skills changed, claimed from the warm pool, or created; started when it is not running.
 */
export async function openSandbox(
  ctx: OpenContext,
  conversation: ConversationId,
  options: OpenOptions,
): Promise<{ session: AttachedSession; as: AttachedAs }> {
  const began = performance.now();
  const name = sandboxNames(ctx.limits.instance, conversation).container;
  const container = ctx.docker.getContainer(name);
  const found = await existingOrPooled(ctx, conversation, options, container, began);
  const cold = found === undefined;
  // Size-capped volumes are loop mounts on the engine's host: (re)mount them before the container
  // starts (a running one has them).
  const quota = found?.Running
    ? undefined
    : await quotaPaths(ctx.docker, ctx.limits, conversation, options.seed);
  let state = found;
  if (state === undefined) {
    const { seed: _seed, ...spec } = options;
    const created = await createSandbox(ctx.docker, ctx.limits, conversation, { ...spec, quota }, ctx.logger);
    if (created) ctx.emit({ action: 'create', conversation });
    // Ours is known without an inspect; one another worker created first is looked up.
    state = created ?? (await inspectAfterCreate(container));
  }
  const session = await attachRuntime(
    ctx.docker,
    container,
    conversation,
    ctx.maxLineBytes,
    ctx.logger,
    state.id,
    ctx.bufferBytes,
  );
  if (!state.Running) {
    try {
      // Before the start: the runtime's first line may come before start() returns.
      session.expectStartupReady();
      await container.start();
      session.fresh = true;
      ctx.logger?.info({ conversation, container: name }, 'sandbox started');
      ctx.emit({ action: 'start', conversation, ms: performance.now() - began, cold });
    } catch (err) {
      // 304: already started; a concurrent open may also have started it between inspect and start.
      if (statusOf(err) !== 304 && !(await inspectState(container))?.Running) {
        await session.close();
        throw new Error(`could not start sandbox ${name}: ${messageOf(err)}`);
      }
    }
  }
  // The runtime's long lines are framed with this session's key from here on (protocol/frames.ts).
  session.greet();
  return { session, as: { network: state.network, skills: state.skills } };
}

/**
 * The conversation's container if it has one fit for these options (a stale one is removed, its
 * volumes kept), else one claimed from the warm pool; undefined when one must be created.
 */
async function existingOrPooled(
  ctx: OpenContext,
  conversation: ConversationId,
  options: OpenOptions,
  container: Dockerode.Container,
  began: number,
): Promise<ContainerState | undefined> {
  // With a warm pool, a new conversation claims a pooled sandbox unless it has volumes of its own:
  // asked alongside the inspect rather than after it.
  // Not with caps made in the micro-VM's guest: its pool would need the helper to link images there.
  const claimable = ctx.pool && !ctx.limits.disk?.onEngine && plainOpen(options) ? ctx.pool : undefined;
  const ownVolumes = claimable ? hasOwnVolumes(ctx.docker, ctx.limits.instance, conversation) : undefined;
  ownVolumes?.catch(() => undefined);
  const state = await inspectState(container);
  const stale =
    state &&
    recreateReason(state, {
      runtime: runtimeLabel(ctx.limits.runtime),
      network: networkLabel(options.network),
      ...(options.skills ? { skills: skillsLabel(options.skills) } : {}),
    });
  if (state && !stale) return state;
  if (stale) {
    // Recreated, never reused as it is: its volumes (so its files) stay.
    await container.remove({ force: true });
    ctx.emit({ action: 'remove', conversation, reason: stale });
    ctx.logger?.info({ conversation, reason: stale }, 'sandbox recreated');
  }
  if (!claimable || !ownVolumes) return undefined;
  // A new conversation without network or skills: take a sandbox the warm pool started before.
  const pooled = await claimFromPool(
    ctx.docker,
    ctx.limits.instance,
    claimable,
    conversation,
    ownVolumes,
    ctx.logger,
    pooledDiskRoot(ctx.limits),
  );
  if (!pooled) return undefined;
  ctx.emit({ action: 'create', conversation, pooled: true });
  ctx.emit({ action: 'start', conversation, ms: performance.now() - began, cold: false, pooled: true });
  return inspectState(container);
}
