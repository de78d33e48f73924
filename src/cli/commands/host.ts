import { userInfo } from 'node:os';
import type { Command } from 'commander';
import type { Redis } from 'ioredis';
import { instanceKeys } from '../../contracts/redis/keys.js';
import { MOVE_HOME } from '../../contracts/redis/scripts.js';
import { readHosts } from '../../shared/hosts/host-report.js';
import { type HostState, hostStates, openHosts } from '../../shared/hosts/host-state.js';
import { connectCliRedis } from '../cli-redis.js';
import { conversationArg } from '../conversation-arg.js';
import { loadConfigOrExit } from '../run-service.js';
import type { HostContext } from './host-drain.js';

export function registerHostCommands(program: Command): void {
  const host = program
    .command('host')
    .description('the hosts (Docker engines) workers run on, and their conversations');
  host
    .command('ls')
    .description('each host: its health, sandboxes and conversations')
    .option('--conversations', 'list each host’s conversations too')
    .action((options: { conversations?: boolean }) =>
      withHosts(async (ctx) => printHosts(ctx, options.conversations === true)),
    );
  host
    .command('drain <host>')
    .description(
      "move a host's idle conversations to another host (its worker copies their files); new ones avoid it",
    )
    .option('--to <host>', 'the host to move them to (default: the freest live one)')
    .option('--max-mb <n>', 'archive MiB copied per conversation at most', '4096')
    .action((value: string, options: { to?: string; maxMb: string }) =>
      withHosts(async (ctx) => {
        const { drainHost } = await import('./host-drain.js');
        const from = resolveHost(value, ctx.states);
        const to = options.to ? resolveHost(options.to, ctx.states) : undefined;
        const maxMb = Number(options.maxMb);
        if (!Number.isInteger(maxMb) || maxMb < 1)
          throw new Error('--max-mb takes a whole number of MiB, 1 or more');
        await drainHost(ctx, from, to, maxMb * 1024 * 1024);
      }),
    );
  host
    .command('undrain <host>')
    .description('let a drained host take new conversations again')
    .action((value: string) =>
      withHosts(async (ctx) => {
        const id = resolveHost(value, ctx.states);
        await ctx.redis.srem(instanceKeys(ctx.config.SANDBOT_INSTANCE).drainingHosts, id);
        console.log(`${id} takes new conversations again`);
      }),
    );
  host
    .command('rehome <conversation>')
    .description('start a conversation afresh on a live host (its files stay on the old one)')
    .option('--to <host>', 'the host (default: the freest live one)')
    .action((value: string, options: { to?: string }) =>
      withHosts((ctx) => rehome(ctx, conversationArg(value), options.to)),
    );
}

/** A host by its full ID, a unique start of it, or its engine's name. */
export function resolveHost(value: string, states: ReadonlyMap<string, HostState>): string {
  if (states.has(value)) return value;
  const found = [...states.values()].filter((s) => s.host.startsWith(value) || s.name === value);
  if (found.length === 1 && found[0]) return found[0].host;
  throw new Error(
    found.length === 0
      ? `no host ${value} has reported (see \`sandbot host ls\`)`
      : `${value} names several hosts`,
  );
}

function printHosts(ctx: HostContext, withConversations: boolean): void {
  if (ctx.states.size === 0) {
    console.log('no host has reported (no worker has started)');
    return;
  }
  const byHost = new Map<string, string[]>();
  for (const [conversation, host] of ctx.homes) byHost.set(host, [...(byHost.get(host) ?? []), conversation]);
  console.log(['HOST', 'NAME', 'HEALTH', 'LAST SEEN', 'SANDBOXES', 'CONVERSATIONS'].join('\t'));
  const now = Date.now();
  for (const s of ctx.states.values()) {
    const health = `${s.health}${s.draining ? ' (draining)' : ''}`;
    const seen = `${Math.round((now - s.lastSeen) / 1000)} s ago`;
    const sandboxes = `${s.live}/${s.maxLive}${s.warm ? ` (${s.warm} warm)` : ''}`;
    const mine = byHost.get(s.host) ?? [];
    console.log([s.host, s.name ?? '-', health, seen, sandboxes, String(mine.length)].join('\t'));
    if (withConversations) for (const c of mine) console.log(`  ${c}`);
  }
}

async function rehome(ctx: HostContext, conversation: string, toArg?: string): Promise<void> {
  const homes = instanceKeys(ctx.config.SANDBOT_INSTANCE).homes;
  const from = ctx.homes.get(conversation);
  const to = toArg ? resolveHost(toArg, ctx.states) : openHosts(ctx.states, from)[0]?.host;
  if (!to) throw new Error('no live host to start it on');
  if (!from) {
    await ctx.redis.hset(homes, conversation, to);
  } else {
    ctx.redis.defineCommand('sbMoveHome', { numberOfKeys: 1, lua: MOVE_HOME });
    const moved = await (ctx.redis as Redis & { sbMoveHome: (...a: string[]) => Promise<number> }).sbMoveHome(
      homes,
      conversation,
      from,
      to,
    );
    if (Number(moved) !== 1) throw new Error(`${conversation} moved meanwhile: nothing done`);
  }
  await ctx.audit.record({
    conversation: conversationArg(conversation),
    actor: ctx.by,
    kind: 'host.rehomed',
    data: { from: from ?? '', to, reason: 'admin' },
  });
  console.log(`${conversation} now lives on ${to}${from ? ` (its files stay on ${from})` : ''}`);
}

/** Runs `work` with Redis, the audit log and every host's state; one line and exit code 1 on failure. */
async function withHosts(work: (ctx: HostContext) => Promise<void> | void): Promise<void> {
  const config = loadConfigOrExit();
  const [{ AuditLog }, { createLogger }] = await Promise.all([
    import('../../shared/audit/audit-log.js'),
    import('../../contracts/log/logger.js'),
  ]);
  const connected = await connectCliRedis(config.SANDBOT_REDIS_URL);
  if (!connected.ok) {
    console.error(`sandbot: ${connected.error}`);
    process.exitCode = 1;
    return;
  }
  const { redis } = connected;
  const audit = new AuditLog(redis, config, createLogger({ SANDBOT_LOG_LEVEL: 'error' }));
  try {
    const { reports, draining, homes } = await readHosts(redis, config.SANDBOT_INSTANCE, true);
    const states = hostStates(reports, draining, Date.now(), config.SANDBOT_HOST_GRACE_SECONDS * 1000);
    await work({ config, redis, by: `admin:${userInfo().username}`, audit, states, homes });
    await audit.settle();
  } catch (error) {
    console.error(`sandbot: ${(error as Error).message}`);
    process.exitCode = 1;
  } finally {
    redis.disconnect();
  }
}
