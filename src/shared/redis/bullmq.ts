import { createRequire } from 'node:module';
import type * as BullMQ from 'bullmq';

export type { Job } from 'bullmq';

/**
 * bullmq, required rather than imported: an ESM import of a CommonJS package has Node scan its files
 * for export names first, and bullmq's index re-exports some 170 files (≈50 ms of every start).
 */
export const { Queue, Worker, UnrecoverableError } = createRequire(import.meta.url)(
  'bullmq',
) as typeof BullMQ;
export type Queue<Data = unknown> = BullMQ.Queue<Data>;
export type Worker = BullMQ.Worker;
