import type { Redis } from 'ioredis';
import type { AuditActor } from '../../contracts/audit/events.js';
import type { Config } from '../../contracts/config/schema.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { instanceKeys } from '../../contracts/redis/keys.js';
import type { AuditLog } from '../../shared/audit/audit-log.js';
import { askMove } from '../../shared/hosts/host-commands.js';
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

/**
 * `sandbot host drain`: marks the host so new conversations avoid it, then asks a worker of the target
 * host to move each idle conversation homed there (src/worker/hosts/drain-move.ts): only a worker beside
 * its engine can make the sandbox's size-capped volumes. One line per conversation; busy ones stay (run
 * it again later); exit code 1 when any move failed.
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
  let moved = 0;
  for (const step of plan.steps) {
    if ('skip' in step) {
      console.log(`${step.conversation}: ${step.skip}`);
      continue;
    }
    const conversation = step.conversation as ConversationId;
    const reply = await askMove(ctx.redis, instance, step.move, {
      ...{ conversation, from, to: step.move },
      ...{ maxBytes, by: ctx.by },
    }).catch((error: Error) => ({ moved: false, line: `not moved: ${error.message}` }));
    if (reply.moved) moved += 1;
    // Left because it became busy meanwhile is not a failure: run the drain again later.
    else if (!reply.line.startsWith('busy')) process.exitCode = 1;
    console.log(`${step.conversation}: ${reply.line}`);
  }
  console.log(`${moved} of ${homed.length} conversations moved to ${plan.target}`);
}
