import type { Redis } from 'ioredis';
import type { Logger } from '../../src/contracts/log/logger.js';
import { DISCORD_TTL, type DiscordKeys } from '../../src/contracts/redis/chat-keys.js';
import type { EditPacer } from '../../src/gateway/chat-throttles.js';
import type { DeliveryOnce } from '../../src/gateway/delivery-once.js';
import { type DiscordRoute, liveInteraction } from './conversation.js';
import type { DiscordApi } from './discord-api.js';

export interface ProgressOptions {
  /** Least time between two edits of one progress message (Discord allows about 5 edits per 5 s). */
  editIntervalMs: number;
  /** Discord shows "typing…" for about 10 s after each call. */
  typingIntervalMs: number;
  /** Stop typing after this long even without a reply (a reply delivered by another gateway). */
  typingMaxMs: number;
}

const SHOWN_STEPS = 10;

/** The progress message's text: a header and the latest steps, as a code block. */
export function renderProgress(header: string, steps: string[], total: number, finished: boolean): string {
  const head = finished
    ? `✅ done${total ? ` (${total} step${total === 1 ? '' : 's'})` : ''}`
    : `⏳ ${header}`;
  if (steps.length === 0) return head;
  const earlier = total - steps.length;
  const lines = steps.map((s) => s.replaceAll('```', "'''").slice(0, 180));
  return `${head}\n\`\`\`\n${earlier > 0 ? `… ${earlier} earlier\n` : ''}${lines.join('\n')}\n\`\`\``;
}

/**
 * One progress message per turn, edited as the agent's steps arrive, plus the typing indicator. The
 * message's id and the steps live in Redis, so any gateway can edit it; edits are paced per turn to
 * at most one per `editIntervalMs`, always showing the latest state.
 */
export class ProgressMessages {
  private readonly lastEditAt = new Map<string, number>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly typing = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly api: DiscordApi,
    private readonly redis: Redis,
    private readonly ledger: DeliveryOnce,
    private readonly keys: DiscordKeys,
    private readonly edits: EditPacer,
    private readonly logger: Logger,
    private readonly options: Omit<ProgressOptions, 'editIntervalMs'>,
  ) {}

  private turnKeys(turnId: string) {
    return { state: this.keys.progress(turnId), steps: this.keys.progressSteps(turnId) };
  }

  /** Records one progress event and shows it (the first one posts the message). */
  async progress(event: { id: string; turnId?: string; text: string }, route: DiscordRoute): Promise<void> {
    const turnId = event.turnId ?? event.id;
    const k = this.turnKeys(turnId);
    if ((await this.redis.hget(k.state, 'finished')) === '1') return;
    const isStart = event.id.endsWith(':progress:start');
    await this.ledger.once(event.id, async () => {
      const write = this.redis.multi();
      if (isStart) write.hset(k.state, 'header', event.text);
      else write.rpush(k.steps, event.text).ltrim(k.steps, -SHOWN_STEPS, -1).hincrby(k.state, 'total', 1);
      await write.expire(k.state, DISCORD_TTL.progress).expire(k.steps, DISCORD_TTL.progress).exec();
    });
    this.startTyping(turnId, route.channelId);
    const posted = await this.ensureMessage(turnId, route);
    if (!posted) this.scheduleEdit(turnId, route);
  }

  /** Ends the turn's progress: no more edits or typing; a channel progress message shows "done". */
  async finish(turnId: string, route: DiscordRoute): Promise<void> {
    const k = this.turnKeys(turnId);
    await this.redis.multi().hset(k.state, 'finished', '1').expire(k.state, DISCORD_TTL.progress).exec();
    this.edits.cancel(turnId);
    this.lastEditAt.delete(turnId);
    this.stopTyping(turnId);
    const messageId = await this.redis.hget(k.state, 'messageId');
    // An interaction's response is overwritten by the reply itself.
    if (messageId && messageId !== '@original') {
      await this.serial(turnId, () => this.edit(turnId, route)).catch((error: unknown) =>
        this.logger.warn({ err: error, turnId }, 'discord: final progress edit failed'),
      );
    }
    this.chains.delete(turnId);
  }

  /** Posts the progress message if the turn has none yet; true when this call posted it. */
  private async ensureMessage(turnId: string, route: DiscordRoute): Promise<boolean> {
    const k = this.turnKeys(turnId);
    if (await this.redis.hget(k.state, 'messageId')) return false;
    const interaction = liveInteraction(route, Date.now());
    const posted = await this.ledger.once(`${turnId}:progress-message`, async () => {
      const content = await this.render(turnId);
      let messageId = '@original';
      if (interaction) await this.api.editOriginal(interaction, { content });
      else messageId = await this.api.postMessage(route.channelId, { content });
      await this.redis
        .multi()
        .hset(k.state, 'messageId', messageId)
        .expire(k.state, DISCORD_TTL.progress)
        .exec();
      this.lastEditAt.set(turnId, Date.now());
      return true;
    });
    return posted === true;
  }

  private scheduleEdit(turnId: string, route: DiscordRoute): void {
    this.edits.defer(turnId, this.edits.waitAfter(this.lastEditAt.get(turnId) ?? 0), () => {
      this.lastEditAt.set(turnId, Date.now());
      void this.serial(turnId, () => this.edit(turnId, route)).catch((error: unknown) =>
        this.logger.warn({ err: error, turnId }, 'discord: progress edit failed'),
      );
    });
  }

  /** Runs edits of one turn one after another, so an older state never lands after a newer one. */
  private serial(turnId: string, work: () => Promise<void>): Promise<void> {
    const next = (this.chains.get(turnId) ?? Promise.resolve()).then(work, work);
    this.chains.set(
      turnId,
      next.catch(() => undefined),
    );
    return next;
  }

  private async edit(turnId: string, route: DiscordRoute): Promise<void> {
    const messageId = await this.redis.hget(this.turnKeys(turnId).state, 'messageId');
    if (!messageId) return;
    const content = await this.render(turnId);
    if (messageId === '@original') {
      const interaction = liveInteraction(route, Date.now());
      if (interaction) await this.api.editOriginal(interaction, { content });
      return;
    }
    await this.api.editMessage(route.channelId, messageId, content);
  }

  private async render(turnId: string): Promise<string> {
    const k = this.turnKeys(turnId);
    const [state, steps] = await Promise.all([
      this.redis.hgetall(k.state),
      this.redis.lrange(k.steps, 0, -1),
    ]);
    return renderProgress(
      state.header ?? 'working…',
      steps,
      Number(state.total ?? 0),
      state.finished === '1',
    );
  }

  private startTyping(turnId: string, channelId: string): void {
    if (this.typing.has(turnId)) return;
    const until = Date.now() + this.options.typingMaxMs;
    const tick = async () => {
      const finished = (await this.redis.hget(this.turnKeys(turnId).state, 'finished')) === '1';
      if (finished || Date.now() > until) return this.stopTyping(turnId);
      await this.api.typing(channelId);
    };
    const run = () =>
      void tick().catch((error: unknown) => this.logger.debug({ err: error }, 'discord: typing failed'));
    const timer = setInterval(run, this.options.typingIntervalMs);
    timer.unref();
    this.typing.set(turnId, timer);
    run();
  }

  private stopTyping(turnId: string): void {
    clearInterval(this.typing.get(turnId));
    this.typing.delete(turnId);
  }

  /** Stops every timer (the adapter is stopping). */
  close(): void {
    this.edits.stop();
    for (const timer of this.typing.values()) clearInterval(timer);
    this.typing.clear();
  }
}
