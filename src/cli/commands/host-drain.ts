import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { createDocker } from '../../../sandbox/host/driver/docker-client.js';
import { copyConversationVolumes, removeConversation } from '../../../sandbox/host/driver/volume-copy.js';
import type { AuditActor } from '../../contracts/audit/events.js';
import type { Config } from '../../contracts/config/schema.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { instanceKeys } from '../../contracts/redis/keys.js';
import { MOVE_HOME } from '../../contracts/redis/scripts.js';
import type { AuditLog } from '../../shared/audit/audit-log.js';
import { type DrainItem, drainPlan, type HostState } from '../../shared/hosts/host-state.js';
import { ConversationStore } from '../../shared/queue/conversation-store.js';

/** What a `sandbot host` command works with: Redis, the audit log, every host's state and every home. */
export interface HostContext {
  config: Config;
  redis: Redis;
  by: AuditActor;
  audit: AuditLog;
  states: Map<string, HostState>;
  homes: Map<string, string>;
}

/** How long a drain holds one conversation's lease (no turn starts meanwhile) and may copy for. */
const MOVE_MS = 10 * 60_000;

/**
 * `sandbot host drain`: marks the host so new conversations avoid it, then moves each idle conversation
 * homed there: holding its lease (so no turn starts), its volumes are copied to the target engine, its
 * home moved, the source's copy removed. Busy conversations stay, one line each; run it again later.
 */
export async function drainHost(ctx: HostContext, from: string, to: string | undefined, maxBytes: number) {
  const instance = ctx.config.SANDBOT_INSTANCE;
  await ctx.redis.sadd(instanceKeys(instance).drainingHosts, from);
  const store = new ConversationStore(ctx.redis, instance);
  const homed = [...ctx.homes].filter(([, host]) => host === from).map(([c]) => c as ConversationId);
  const items: DrainItem[] = [];
  for (const conversation of homed) {
    const busy =
      (await store.leaseHolder(conversation)) !== null || (await store.pendingCount(conversation)) > 0;
    items.push({ conversation, busy });
  }
  const plan = drainPlan(from, items, ctx.states, to);
  console.log(`${from} is marked draining: new conversations go elsewhere`);
  if (plan.problem || !plan.target) {
    if (homed.length > 0) {
      console.error(`sandbot: ${plan.problem}`);
      process.exitCode = 1;
    }
    return;
  }
  const engines = { from: engineOf(ctx, from), to: engineOf(ctx, plan.target) };
  let moved = 0;
  for (const step of plan.steps) {
    if ('skip' in step) {
      console.log(`${step.conversation}: ${step.skip}`);
      continue;
    }
    const line = await moveOne(ctx, store, engines, step.conversation as ConversationId, {
      from,
      to: step.move,
      maxBytes,
    }).catch((error: Error) => `not moved: ${error.message}`);
    if (line.startsWith('moved')) moved += 1;
    else process.exitCode = 1;
    console.log(`${step.conversation}: ${line}`);
  }
  console.log(`${moved} of ${homed.length} conversations moved to ${plan.target}`);
}

function engineOf(ctx: HostContext, host: string) {
  const endpoint = ctx.states.get(host)?.endpoint;
  if (!endpoint)
    throw new Error(`host ${host} reports no engine address (micro-VM): it cannot be drained from here`);
  return createDocker(endpoint);
}

async function moveOne(
  ctx: HostContext,
  store: ConversationStore,
  engines: { from: ReturnType<typeof createDocker>; to: ReturnType<typeof createDocker> },
  conversation: ConversationId,
  move: { from: string; to: string; maxBytes: number },
): Promise<string> {
  const token = `drain:${randomUUID()}`;
  if (!(await store.acquire(conversation, token, MOVE_MS))) return 'busy now (a turn started): left here';
  try {
    if ((await store.pendingCount(conversation)) > 0) return 'busy now (messages wait): left here';
    const instance = ctx.config.SANDBOT_INSTANCE;
    const copied = await copyConversationVolumes(engines, instance, conversation, ctx.config.SANDBOX_IMAGE, {
      maxBytes: move.maxBytes,
      maxMs: MOVE_MS - 30_000,
    });
    if (!(await moveHome(ctx.redis, instance, conversation, move.from, move.to))) {
      await removeConversation(engines.to, instance, conversation);
      return 'its home changed meanwhile: left as it is';
    }
    await ctx.audit.record({
      conversation,
      actor: ctx.by,
      kind: 'host.rehomed',
      data: { from: move.from, to: move.to, reason: 'drain', bytes: copied.bytes },
    });
    await removeConversation(engines.from, instance, conversation);
    return `moved to ${move.to} (${copied.volumes.length} volumes, ${copied.bytes} bytes)`;
  } finally {
    await store.yieldTurn(conversation, token);
  }
}

async function moveHome(redis: Redis, instance: string, conversation: string, from: string, to: string) {
  redis.defineCommand('sbMoveHome', { numberOfKeys: 1, lua: MOVE_HOME });
  const run = (redis as Redis & { sbMoveHome: (...a: string[]) => Promise<number> }).sbMoveHome;
  return Number(await run.call(redis, instanceKeys(instance).homes, conversation, from, to)) === 1;
}
