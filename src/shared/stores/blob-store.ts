import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { blobKeys } from '../../contracts/redis/keys.js';

/**
 * File bytes in transit between gateway and worker (attachments in, outbox files out), in Redis with
 * an expiry, so gateways and workers on different hosts need nothing shared but Redis.
 */
export class BlobStore {
  constructor(
    private readonly redis: Redis,
    private readonly instance: string,
    private readonly ttlSeconds = 86_400,
  ) {}

  async put(bytes: Buffer): Promise<string> {
    const key = blobKeys(this.instance).blob(randomUUID());
    await this.redis.set(key, bytes, 'EX', this.ttlSeconds);
    return key;
  }

  /** The bytes, or null when the blob expired or never was (or belongs to another instance). */
  async get(key: string): Promise<Buffer | null> {
    if (!key.startsWith(blobKeys(this.instance).prefix)) return null;
    return this.redis.getBuffer(key);
  }
}
