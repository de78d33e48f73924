import type { webApi } from '@slack/bolt';
import type { Redis } from 'ioredis';
import type { Logger } from '../../src/contracts/log/logger.js';
import { SLACK_TTL, type SlackKeys } from '../../src/contracts/redis/chat-keys.js';
import { SCHEDULED_MARK } from '../../src/contracts/schedules/schedule-run.js';
import type { EditPacer } from '../../src/gateway/chat-throttles.js';
import type { SlackRoute } from './slack-event.js';
import { escapeForSlack } from './slack-text.js';

export type ProgressStatus = 'working' | 'done' | 'failed' | 'stopped';

const HEADERS: Record<ProgressStatus, string> = {
  working: ':hourglass_flowing_sand: Working…',
  done: ':white_check_mark: Done',
  failed: ':x: Failed',
  stopped: ':octagonal_sign: Stopped',
};
/** Steps shown in the progress message; earlier ones are counted, not listed. */
const SHOWN_STEPS = 8;

/**
 * The progress message's text: a header and the latest tool steps; a scheduled run's first line says
 * so ("⏰ scheduled task: …").
 */
export function renderProgress(status: ProgressStatus, steps: string[], note?: string): string {
  const count = steps.length === 0 ? '' : ` – ${steps.length} step${steps.length === 1 ? '' : 's'}`;
  const hidden = steps.length - SHOWN_STEPS;
  const lines = [...(note ? [escapeForSlack(note)] : []), `${HEADERS[status]}${count}`];
  if (hidden > 0) lines.push(`_… ${hidden} earlier step${hidden === 1 ? '' : 's'}_`);
  for (const step of steps.slice(-SHOWN_STEPS))
    lines.push(`• \`${escapeForSlack(step.replace(/`/g, "'"))}\``);
  return lines.join('\n');
}

/** Steps in the order the worker numbered them ("tool:2" before "tool:10"). */
export function orderSteps(steps: Record<string, string>): string[] {
  const number = (key: string) => Number(/(\d+)$/.exec(key)?.[1] ?? Number.MAX_SAFE_INTEGER);
  return Object.entries(steps)
    .sort(([a], [b]) => number(a) - number(b))
    .map(([, text]) => text);
}

/**
 * One progress message per turn, in the thread, edited as tool steps come in. Its ts lives in Redis,
 * so any gateway can edit it. Edits are paced to one per interval per turn (Slack allows about one
 * update per second per message); a later step or the turn's end flushes what was held back.
 */
export class ProgressMessages {
  constructor(
    private readonly client: webApi.WebClient,
    private readonly redis: Redis,
    private readonly keys: SlackKeys,
    private readonly logger: Logger,
    private readonly edits: EditPacer,
  ) {}

  /** Records a step (none for the turn's start) and shows it, now or at the next allowed edit. */
  async step(turnId: string, route: SlackRoute, stepKey: string | undefined, text: string): Promise<void> {
    const scheduled = stepKey === undefined && text.startsWith(SCHEDULED_MARK);
    await this.ensureMessage(turnId, route, scheduled ? text : undefined);
    if (stepKey === undefined) return;
    const stepsKey = this.keys.progressSteps(turnId);
    await this.redis.multi().hset(stepsKey, stepKey, text).expire(stepsKey, SLACK_TTL.progress).exec();
    const last = Number((await this.redis.hget(this.keys.progress(turnId), 'last')) ?? 0);
    const wait = this.edits.waitAfter(last);
    if (wait <= 0) return this.flush(turnId);
    this.edits.defer(turnId, wait, () => void this.flush(turnId));
  }

  /** The turn ended: the message shows the final state and every step held back. */
  async finish(turnId: string, status: ProgressStatus): Promise<void> {
    this.edits.cancel(turnId);
    await this.flush(turnId, status);
  }

  stop(): void {
    this.edits.stop();
  }

  private async ensureMessage(turnId: string, route: SlackRoute, note?: string): Promise<void> {
    const key = this.keys.progress(turnId);
    // Posted already, or the turn already ended (a late retry of its start must not post after the reply).
    const [ts, final] = await this.redis.hmget(key, 'ts', 'final');
    if (ts !== null || final !== null) return;
    const lock = this.keys.progressLock(turnId);
    if ((await this.redis.set(lock, '1', 'EX', SLACK_TTL.progressLock, 'NX')) === null) {
      throw new Error(
        `the progress message of turn ${turnId} is being posted elsewhere; the queue will retry`,
      );
    }
    try {
      const posted = await this.client.chat.postMessage({
        channel: route.channel,
        text: renderProgress('working', [], note),
        ...(route.thread_ts ? { thread_ts: route.thread_ts } : {}),
      });
      if (!posted.ts) throw new Error('chat.postMessage answered without a ts');
      const fields = {
        channel: posted.channel ?? route.channel,
        ts: posted.ts,
        last: Date.now(),
        ...(note ? { note } : {}),
      };
      await this.redis.multi().hset(key, fields).expire(key, SLACK_TTL.progress).exec();
    } finally {
      await this.redis.del(lock);
    }
  }

  /** Edits the message to what Redis holds; a failed edit is logged, as the next one repairs it. */
  private async flush(turnId: string, final?: ProgressStatus): Promise<void> {
    try {
      const key = this.keys.progress(turnId);
      if (final) await this.redis.multi().hset(key, 'final', final).expire(key, SLACK_TTL.progress).exec();
      const [state, steps] = await Promise.all([
        this.redis.hgetall(key),
        this.redis.hgetall(this.keys.progressSteps(turnId)),
      ]);
      if (!state.ts || !state.channel) return;
      const status = (state.final as ProgressStatus | undefined) ?? 'working';
      await this.redis.hset(key, 'last', Date.now());
      await this.client.chat.update({
        channel: state.channel,
        ts: state.ts,
        text: renderProgress(status, orderSteps(steps), state.note),
      });
    } catch (error) {
      this.logger.warn({ err: error, turnId }, 'updating the Slack progress message failed');
    }
  }
}
