import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

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
    const key = `${this.instance}:blob:${randomUUID()}`;
    await this.redis.set(key, bytes, 'EX', this.ttlSeconds);
    return key;
  }

  /** The bytes, or null when the blob expired or never was (or belongs to another instance). */
  async get(key: string): Promise<Buffer | null> {
    if (!key.startsWith(`${this.instance}:blob:`)) return null;
    return this.redis.getBuffer(key);
  }
}
