import { userInfo } from 'node:os';
import type { Command } from 'commander';
import type { Config } from '../../contracts/config/schema.js';
import type { ConversationControl } from '../../shared/queue/conversation-control.js';
import { conversationArg } from '../conversation-arg.js';
import { loadConfigOrExit } from '../run-service.js';

/** The driver (and, under SANDBOX_LAYER=microvm, the micro-VM's engine) loads only when a command runs. */
async function driverFromConfig() {
  const settings = loadConfigOrExit();
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

export function registerSandboxCommands(program: Command): void {
  const sandbox = program.command('sandbox').description("list, stop and remove this instance's sandboxes");
  sandbox
    .command('ls')
    .description('list sandboxes (one per conversation)')
    .action(async () => {
      const driver = await driverFromConfig();
      const [rows, pooled] = await Promise.all([driver.list(), driver.listPool()]);
      if (rows.length === 0 && pooled.length === 0) return console.log('no sandboxes');
      console.log(['CONVERSATION', 'STATE', 'CREATED', 'CONTAINER'].join('\t'));
      for (const s of rows) {
        const state = s.pooled ? `${s.state} (from pool)` : s.state;
        console.log([s.conversation, state, s.createdAt, s.name].join('\t'));
      }
      // Warm pool: started ahead, no conversation yet (SANDBOX_WARM_POOL).
      for (const p of pooled) console.log(['(pool)', p.state, p.createdAt, p.name].join('\t'));
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
    .action(async (value: string, options: { reason: string }) => {
      const conversation = conversationArg(value);
      await withControl(async (control, config) => {
        await control.kill(conversation, `admin:${userInfo().username}`, options.reason);
        // Also here, in case no worker is running to receive the kill.
        const [{ sandboxDriverFromConfig }, { resolveLayerOrThrow }] = await Promise.all([
          import('../../../sandbox/host/driver/from-config.js'),
          import('../../../sandbox/host/layers/layer-probe.js'),
        ]);
        await sandboxDriverFromConfig((await resolveLayerOrThrow(config)).config).kill(conversation);
      });
      console.log(`killed ${value}; quarantined until \`sandbot sandbox release ${value}\``);
    });
  sandbox
    .command('release <conversation>')
    .description('let a quarantined conversation run again')
    .action(async (value: string) => {
      const conversation = conversationArg(value);
      const released = await withControl((control) =>
        control.release(conversation, `admin:${userInfo().username}`),
      );
      console.log(released ? `released ${value}` : `${value} was not quarantined`);
      if (!released) process.exitCode = 1;
    });
}

async function withControl<T>(
  work: (control: ConversationControl, config: Config) => Promise<T>,
): Promise<T> {
  const config = loadConfigOrExit();
  const [{ createConversationControl }, { ConversationStore }, { createFailFastRedis }] = await Promise.all([
    import('../../shared/queue/conversation-control.js'),
    import('../../shared/queue/conversation-store.js'),
    import('../../shared/redis/connection.js'),
  ]);
  const redis = createFailFastRedis(config.SANDBOT_REDIS_URL, `${config.SANDBOT_INSTANCE}-cli`);
  try {
    const control = createConversationControl(
      redis,
      new ConversationStore(redis, config.SANDBOT_INSTANCE),
      config,
    );
    return await work(control, config);
  } finally {
    redis.disconnect();
  }
}
