import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { type ConversationId, conversationKey } from '../conversation/id.js';

/** Where the canary lies in each workspace: a credentials file an injected prompt would go for. */
export const CANARY_PATH = '.aws/credentials';

/**
 * A tripwire: a fake credentials file with a token unique to the conversation. Nothing legitimate reads
 * it; if the token ever shows up in what the sandbox sends to the model, the agent went looking for
 * secrets, and the conversation is killed.
 */
export class Canary {
  constructor(
    private readonly redis: Redis,
    private readonly instance: string,
  ) {}

  async token(conversation: ConversationId): Promise<string> {
    const key = `${this.instance}:conv:${conversationKey(conversation)}:canary`;
    await this.redis.set(key, `AKIA${randomBytes(8).toString('hex').toUpperCase()}`, 'NX');
    return (await this.redis.get(key)) ?? '';
  }
}

export function canaryFileContent(token: string): Buffer {
  return Buffer.from(
    `[default]\naws_access_key_id = ${token}\naws_secret_access_key = ${token.toLowerCase()}x9\n`,
  );
}

/** Whether a model request carries the canary token (the agent read the file). */
export function carriesCanary(payload: unknown, token: string): boolean {
  return token !== '' && JSON.stringify(payload).includes(token);
}
