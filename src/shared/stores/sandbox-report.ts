import type { Redis } from 'ioredis';
import { z } from 'zod';
import { ConversationId } from '../../contracts/conversation/id.js';
import { instanceKeys } from '../../contracts/redis/keys.js';

/**
 * What each live worker's engine holds, for the operator console (the gateway has no engine client):
 * its sandboxes with CPU, memory and disk, and the skills on its disk waiting for an admin's approval.
 * Each worker rewrites its entry every REFRESH_MS; an entry older than STALE_MS is a worker gone.
 */
export const SANDBOX_REPORT_REFRESH_MS = 10_000;
const STALE_MS = 35_000;

const bytes = z.number().int().nonnegative();

export const SandboxStat = z.object({
  conversation: ConversationId,
  /** Docker's state: running, exited, created, … */
  state: z.string().max(40),
  /** CPU use over the last sampling interval, in percent of one core (200 = two cores busy). */
  cpuPercent: z.number().nonnegative().optional(),
  memoryBytes: bytes.optional(),
  memoryLimitBytes: bytes.optional(),
  /** Used and total bytes of the size-capped /workspace, where the worker can see its file system. */
  diskUsedBytes: bytes.optional(),
  diskTotalBytes: bytes.optional(),
  pooled: z.boolean().optional(),
});
export type SandboxStat = z.infer<typeof SandboxStat>;

export const PendingSkill = z.object({
  ref: z.string().max(200),
  description: z.string().max(500),
  addedBy: z.string().max(200),
  addedAt: z.string().max(40),
  critical: z.number().int().nonnegative(),
  warnings: z.number().int().nonnegative(),
  /** The `sandbot skill approve …` command an admin runs after reading the report. */
  next: z.string().max(1000),
});
export type PendingSkill = z.infer<typeof PendingSkill>;

export const SandboxReport = z.object({
  at: z.number(),
  sandboxes: z.array(SandboxStat).max(1000),
  /** Absent when the worker has no skills folder. */
  pendingSkills: z.array(PendingSkill).max(200).optional(),
});
export type SandboxReport = z.infer<typeof SandboxReport>;

/** Writes one worker's report (and keeps the whole key alive only while some worker writes). */
export async function writeSandboxReport(
  redis: Redis,
  instance: string,
  workerId: string,
  report: SandboxReport,
): Promise<void> {
  const key = instanceKeys(instance).sandboxes;
  await redis.multi().hset(key, workerId, JSON.stringify(report)).pexpire(key, STALE_MS).exec();
}

export async function removeSandboxReport(redis: Redis, instance: string, workerId: string): Promise<void> {
  await redis.hdel(instanceKeys(instance).sandboxes, workerId);
}

/** The live workers' reports, by worker id; stale or unreadable entries left out. */
export async function readSandboxReports(
  redis: Redis,
  instance: string,
  now = Date.now(),
): Promise<Map<string, SandboxReport>> {
  const raw = await redis.hgetall(instanceKeys(instance).sandboxes);
  const found = new Map<string, SandboxReport>();
  for (const [worker, text] of Object.entries(raw)) {
    try {
      const parsed = SandboxReport.safeParse(JSON.parse(text));
      if (parsed.success && now - parsed.data.at <= STALE_MS) found.set(worker, parsed.data);
    } catch {
      // An unreadable entry is left out.
    }
  }
  return found;
}
