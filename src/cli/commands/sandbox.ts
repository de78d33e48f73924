import { userInfo } from 'node:os';
import type { Command } from 'commander';
import type { AuditActor } from '../../contracts/audit/events.js';
import type { Config } from '../../contracts/config/schema.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { AuditLog } from '../../shared/audit/audit-log.js';
import type { ConversationControl } from '../../shared/queue/conversation-control.js';
import { connectCliRedis } from '../cli-redis.js';
import { conversationArg } from '../conversation-arg.js';
import { loadConfigOrExit } from '../run-service.js';

/** The driver (and, under SANDBOX_LAYER=microvm, the micro-VM's engine) loads only when a command runs. */
async function driverFromConfig(settings: Config = loadConfigOrExit()) {
  const [{ sandboxDriverFromConfig }, { sandboxEngineForCli }, { resolveLayerOrThrow }] = await Promise.all([
    import('../../../sandbox/host/driver/from-config.js'),
    import('../../../sandbox/host/vm/cli-engine.js'),
    import('../../../sandbox/host/layers/layer-probe.js'),
  ]);
  try {
    // SANDBOX_LAYER=auto: the layer a worker here chooses. Under microvm the sandboxes live in its engine.
    const { config } = await resolveLayerOrThrow(settings);
    return sandboxDriverFromConfig(config, undefined, sandboxEngineForCli(config));
  } catch (error) {
    console.error(`sandbot: ${(error as Error).message}`);
    process.exit(1);
  }
}

/** Each conversation's home host (src/shared/hosts), when Redis answers; else none (the listing still works). */
async function homesOrNone(config: Config = loadConfigOrExit()): Promise<Map<string, string>> {
  const connected = await connectCliRedis(config.SANDBOT_REDIS_URL);
  if (!connected.ok) return new Map();
  try {
    const { instanceKeys } = await import('../../contracts/redis/keys.js');
    return new Map(
      Object.entries(await connected.redis.hgetall(instanceKeys(config.SANDBOT_INSTANCE).homes)),
    );
  } catch {
    return new Map();
  } finally {
    connected.redis.disconnect();
  }
}

export function registerSandboxCommands(program: Command): void {
  const sandbox = program.command('sandbox').description("list, stop and remove this instance's sandboxes");
  sandbox
    .command('ls')
    .description('list sandboxes (one per conversation)')
    .action(async () => {
      const driver = await driverFromConfig();
      const [rows, pooled, homes] = await Promise.all([driver.list(), driver.listPool(), homesOrNone()]);
      if (rows.length === 0 && pooled.length === 0) return console.log('no sandboxes');
      console.log(['CONVERSATION', 'STATE', 'CREATED', 'CONTAINER', 'HOME HOST'].join('\t'));
      for (const s of rows) {
        const state = s.pooled ? `${s.state} (from pool)` : s.state;
        console.log(
          [s.conversation, state, s.createdAt, s.name, homes.get(s.conversation) ?? '-'].join('\t'),
        );
      }
      // Warm pool: started ahead, no conversation yet (SANDBOX_WARM_POOL).
      for (const p of pooled) console.log(['(pool)', p.state, p.createdAt, p.name, '-'].join('\t'));
      console.log('(every host and its conversations: sandbot host ls --conversations)');
    });
  sandbox
    .command('stop <conversation>')
    .description("stop a conversation's sandbox (its files stay; the next message starts it again)")
    .action(async (value: string) => {
      const stopped = await (await driverFromConfig()).stop(conversationArg(value));
      console.log(stopped ? `stopped ${value}` : `no sandbox for ${value}`);
      if (!stopped) process.exitCode = 1;
    });
  sandbox
    .command('rm <conversation>')
    .description("remove a conversation's sandbox")
    .option('--wipe', 'also delete its /workspace and /session volumes')
    .action(async (value: string, options: { wipe?: boolean }) => {
      const removed = await (await driverFromConfig()).remove(conversationArg(value), {
        wipe: options.wipe === true,
      });
      console.log(
        removed ? `removed ${value}${options.wipe ? ' and its volumes' : ''}` : `no sandbox for ${value}`,
      );
      if (!removed) process.exitCode = 1;
    });
  sandbox
    .command('kill <conversation>')
    .description('SIGKILL a sandbox at once and quarantine its conversation until released')
    .option('--reason <text>', 'why (shown in the channel)', 'killed by an operator')
    .action((value: string, options: { reason: string }) =>
      killCommand(conversationArg(value), options.reason),
    );
  sandbox
    .command('release <conversation>')
    .description('let a quarantined conversation run again')
    .action(async (value: string) => {
      const conversation = conversationArg(value);
      const released = await withControl((control, _config, by) => control.release(conversation, by));
      if (released === undefined) return;
      console.log(released ? `released ${value}` : `${value} was not quarantined`);
      if (!released) process.exitCode = 1;
    });
}

/**
 * Quarantine (recorded in the audit with who did it), the kill sent to every worker, and the kill done
 * here too, in case no worker is running to receive it. Without Redis the sandbox is still killed
 * through the engine, and the one line says it is not quarantined.
 */
async function killCommand(conversation: ConversationId, reason: string): Promise<void> {
  const killHere = async (config: Config) => (await driverFromConfig(config)).kill(conversation);
  const done = await withControl(
    async (control, config, by, audit) => {
      await control.kill(conversation, by, reason);
      const killed = await killHere(config);
      await audit.record({ conversation, actor: by, kind: 'sandbox.kill', data: { by, reason, killed } });
      return true;
    },
    async (config) =>
      (await killHere(config).catch(() => false)) ? 'the sandbox was killed' : 'no sandbox was killed',
  );
  if (done)
    console.log(`killed ${conversation}; quarantined until \`sandbot sandbox release ${conversation}\``);
}

/**
 * Runs `work` with the instance's conversation control and an audit log of this process (settled
 * before the connection closes). Redis unreachable: `offline` may still act (e.g. kill through the
 * engine), then one line and exit code 1; the result is then undefined.
 */
async function withControl<T>(
  work: (control: ConversationControl, config: Config, by: AuditActor, audit: AuditLog) => Promise<T>,
  offline?: (config: Config) => Promise<string>,
): Promise<T | undefined> {
  const config = loadConfigOrExit();
  const [{ createConversationControl }, { ConversationStore }, { AuditLog }, { createLogger }] =
    await Promise.all([
      import('../../shared/queue/conversation-control.js'),
      import('../../shared/queue/conversation-store.js'),
      import('../../shared/audit/audit-log.js'),
      import('../../contracts/log/logger.js'),
    ]);
  const connected = await connectCliRedis(config.SANDBOT_REDIS_URL);
  if (!connected.ok) {
    const note = offline ? await offline(config) : undefined;
    console.error(
      `sandbot: ${connected.error}: ${note ? `${note}, but the conversation is NOT quarantined` : 'nothing done'}; run this again once Redis is up`,
    );
    process.exitCode = 1;
    return undefined;
  }
  const { redis } = connected;
  const by: AuditActor = `admin:${userInfo().username}`;
  // Only failures are logged (to stderr): the command's own output stays one line.
  const audit = new AuditLog(redis, config, createLogger({ SANDBOT_LOG_LEVEL: 'error' }));
  try {
    const store = new ConversationStore(redis, config.SANDBOT_INSTANCE);
    const result = await work(createConversationControl(redis, store, config, audit), config, by, audit);
    await audit.settle();
    return result;
  } catch (error) {
    console.error(`sandbot: ${(error as Error).message}`);
    process.exitCode = 1;
    return undefined;
  } finally {
    redis.disconnect();
  }
}
