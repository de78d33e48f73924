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

/**
 * The forms the token may take in what the sandbox sends: as is, hex, and base64 at each of the three
 * byte alignments (the token may sit anywhere in an encoded file). Only the part of each encoding that
 * depends on the token alone is kept.
 */
export function canaryNeedles(token: string): string[] {
  if (token === '') return [];
  const bytes = Buffer.from(token);
  const base64 = [0, 1, 2].map((shift) => {
    const encoded = Buffer.concat([Buffer.alloc(shift), bytes]).toString('base64');
    return encoded.slice(shift === 0 ? 0 : 4, -4);
  });
  return [token, bytes.toString('hex'), bytes.toString('hex').toUpperCase(), ...base64];
}

/** Whether a model request carries the canary token in any of its forms (the agent read the file). */
export function carriesCanary(payload: unknown, token: string): boolean {
  const text = JSON.stringify(payload);
  return canaryNeedles(token).some((needle) => text.includes(needle));
}

/** Whether the model's tool calls go for the canary file at all (reading it, copying it, encoding it). */
export function touchesCanary(toolCalls: unknown): boolean {
  return JSON.stringify(toolCalls ?? []).includes(CANARY_PATH);
}
