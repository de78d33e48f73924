import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { WorkspaceSnapshot } from '../../../sandbox/host/driver/workspace-snapshot.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { CANARY_TOKEN } from '../../contracts/redis/scripts.js';
import { ConversationValueStore } from '../../shared/stores/conversation-value.js';

/** Where the canary lies in each workspace: a credentials file an injected prompt would go for. */
export const CANARY_PATH = '.aws/credentials';

/**
 * A tripwire: a fake credentials file with a token unique to the conversation. Nothing legitimate reads
 * it; if the token ever shows up in what the sandbox sends to the model, the agent went looking for
 * secrets, and the conversation is killed.
 */
export class Canary extends ConversationValueStore {
  constructor(redis: Redis, instance: string) {
    super(redis, instance, 'canary');
  }

  async token(conversation: ConversationId): Promise<string> {
    // The token the conversation has, or this new one if it has none (one round trip).
    return String(await this.redis.eval(CANARY_TOKEN, 1, this.key(conversation), newCanaryToken()));
  }

  /** Makes `token` the conversation's (a warm pool's sandbox, planted before it was claimed). */
  async adopt(conversation: ConversationId, token: string): Promise<void> {
    await this.redis.set(this.key(conversation), token);
  }
}

export function newCanaryToken(): string {
  return `AKIA${randomBytes(8).toString('hex').toUpperCase()}`;
}

export function canaryFileContent(token: string): Buffer {
  return Buffer.from(
    `[default]\naws_access_key_id = ${token}\naws_secret_access_key = ${token.toLowerCase()}x9\n`,
  );
}

/**
 * Whether the snapshot shows the canary as the worker plants it: same content, a regular file readable
 * by its owner only, in a directory of the owner's. Anything else (deleted, rewritten, made unreadable,
 * replaced by a link) and it is planted again before the turn.
 */
export function canaryIntact(snapshot: WorkspaceSnapshot | undefined, token: string): boolean {
  const file = snapshot?.entries[`/workspace/${CANARY_PATH}`];
  const dir = snapshot?.directories?.[`/workspace/${CANARY_PATH.slice(0, CANARY_PATH.lastIndexOf('/'))}`];
  const sha256 = createHash('sha256').update(canaryFileContent(token)).digest('hex');
  return file?.type === 'file' && file.sha256 === sha256 && file.mode === 0o600 && dir === 0o700;
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
