import { loadConfig } from '../contracts/config/load.js';
import type { Config } from '../contracts/config/schema.js';
import { createLogger, type Logger } from '../contracts/log/logger.js';

/**
 * Loads config (exit 2 with one line naming the bad setting), starts the service(s), and stops them
 * gracefully on SIGINT/SIGTERM (a second signal exits at once).
 */
export async function runService(
  start: (config: Config, logger: Logger) => Promise<Array<{ stop(): Promise<void> }>>,
): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger(config);
  let services: Array<{ stop(): Promise<void> }>;
  try {
    services = await start(config, logger);
  } catch (error) {
    console.error(`sandbot: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) process.exit(130);
    stopping = true;
    logger.info({ signal }, 'stopping');
    Promise.all(services.map((s) => s.stop())).then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

export function loadConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(2);
  }
}
