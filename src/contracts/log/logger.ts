import { pino } from 'pino';
import type { Config } from '../config/schema.js';

export type Logger = pino.Logger;

/** JSON-lines logs on stderr (stdout stays free for CLI output). */
export function createLogger(config: Pick<Config, 'SANDBOT_LOG_LEVEL'>): Logger {
  return pino({ level: config.SANDBOT_LOG_LEVEL, base: { app: 'sandbot' } }, pino.destination(2));
}
