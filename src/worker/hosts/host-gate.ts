import type { Redis } from 'ioredis';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { shortHash } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import type { InboundMessage } from '../../contracts/protocol/inbound.js';
import type { OutboundEvent } from '../../contracts/protocol/outbound.js';
import { bullPrefix, conversationKeys, hostQueue, instanceKeys } from '../../contracts/redis/keys.js';
import { MOVE_HOME } from '../../contracts/redis/scripts.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import { readHosts } from '../../shared/hosts/host-report.js';
import {
  type HostState,
  homeVerdict,
  hostGoneNotice,
  hostLabel,
  hostStates,
  placeNew,
} from '../../shared/hosts/host-state.js';
import type { ConversationStore } from '../../shared/queue/conversation-store.js';
import type { InboundJob } from '../../shared/queue/inbound-queue.js';
import { Queue } from '../../shared/redis/bullmq.js';

export interface HostGateDeps {
  redis: Redis;
  store: Pick<ConversationStore, 'pendingMessages'>;
  publish: (event: OutboundEvent) => Promise<void>;
  audit?: AuditRecorder;
  logger: Logger;
}

export interface HostGateOptions {
  instance: string;
  /** This worker's host: its sandboxes' engine ID. */
  host: string;
  graceMs: number;
  /** This host's free slots now (fresher than its last report). */
  free: () => Promise<number>;
}

/** What the gate says of a job: run it here, or what became of it instead. */
export type Route = 'run' | `forwarded to ${string}` | `held: ${string}`;

/** A notice is remembered per outage for a week (a longer outage may tell once more). */
const NOTICE_TTL_SECONDS = 7 * 86_400;
/** Reports are read at most this often per worker (placement and verdicts tolerate a second's age). */
const STATES_TTL_MS = 1000;

/**
 * Before a worker takes a conversation's lease: is its home this host? A conversation without a home is
 * claimed here (or handed to a freer host); one homed on another host is passed to that host's queue;
 * one whose home is gone is held, its channel told once per outage, until the host answers again or a
 * `reset` starts it afresh here (recorded in the audit). Nothing runs on another host's files.
 */
export class HostGate {
  readonly queueName: string;
  private readonly queues = new Map<string, Queue<InboundJob>>();
  private states?: { at: number; value: Map<string, HostState> };

  constructor(
    private readonly deps: HostGateDeps,
    private readonly options: HostGateOptions,
  ) {
    this.queueName = hostQueue(options.host);
    deps.redis.defineCommand('sbMoveHome', { numberOfKeys: 1, lua: MOVE_HOME });
  }

  get host(): string {
    return this.options.host;
  }

  private get homes(): string {
    return instanceKeys(this.options.instance).homes;
  }

  /** `own`: the job came on this host's queue (placed here already: claimed without weighing again). */
  async route(
    conversation: ConversationId,
    job: { id?: string; data: InboundJob },
    own: boolean,
  ): Promise<Route> {
    let home = await this.deps.redis.hget(this.homes, conversation);
    if (!home) {
      const states = await this.hostStates();
      const place = own ? { claim: true as const } : placeNew(this.host, await this.options.free(), states);
      if ('forward' in place) return this.forward(place.forward, conversation, job);
      if (await this.deps.redis.hsetnx(this.homes, conversation, this.host)) return 'run';
      home = (await this.deps.redis.hget(this.homes, conversation)) ?? this.host;
    }
    const verdict = homeVerdict(home, this.host, await this.hostStates());
    if (verdict === 'mine') return 'run';
    if ('forward' in verdict) return this.forward(verdict.forward, conversation, job);
    return this.held(conversation, verdict);
  }

  /** Whether the conversation is (still) homed here: checked again once the lease is held. */
  async isHome(conversation: ConversationId): Promise<boolean> {
    return (await this.deps.redis.hget(this.homes, conversation)) === this.host;
  }

  /** The home is gone: a `reset` waiting moves it here; else the channel is told (once per outage). */
  private async held(conversation: ConversationId, gone: { gone: string; since: number }): Promise<Route> {
    const pending = await this.deps.store.pendingMessages(conversation);
    const reset = pending.find((m) => m.command === 'reset');
    if (reset) {
      const moved = Number(
        await (this.deps.redis as Redis & { sbMoveHome: MoveHome }).sbMoveHome(
          this.homes,
          conversation,
          gone.gone,
          this.host,
        ),
      );
      if (moved === 1) {
        await this.deps.audit?.record({
          conversation,
          actor: `user:${reset.platform}:${reset.user.id}`,
          kind: 'host.rehomed',
          data: { from: gone.gone, to: this.host, reason: 'reset' },
        });
        this.deps.logger.info(
          { conversation, from: gone.gone, to: this.host },
          'conversation re-homed by reset',
        );
      }
      return (await this.isHome(conversation)) ? 'run' : `held: moved elsewhere meanwhile`;
    }
    const last = pending.at(-1);
    if (last) await this.notify(conversation, gone, last);
    return `held: home ${gone.gone} is gone`;
  }

  private async notify(
    conversation: ConversationId,
    gone: { gone: string; since: number },
    last: InboundMessage,
  ): Promise<void> {
    const outage = `${gone.gone}@${gone.since}`;
    const key = conversationKeys(this.options.instance, conversation).hostNotice;
    const before = await this.deps.redis.set(key, outage, 'EX', NOTICE_TTL_SECONDS, 'GET');
    if (before === outage) return;
    const states = await this.hostStates();
    await this.deps.publish({
      id: `host-gone:${shortHash(`${conversation}\n${outage}`)}`,
      conversation,
      platform: last.platform,
      route: last.route,
      type: 'error',
      message: hostGoneNotice(hostLabel(gone.gone, states.get(gone.gone))),
    });
    this.deps.logger.warn({ conversation, host: gone.gone }, "conversation's home host is gone: told");
  }

  /**
   * Passes the job to a host's own queue. A message keeps its id there (one forward per message); kicks
   * share one id per conversation, so a gone host's queue does not fill with re-announcements.
   */
  private async forward(
    host: string,
    conversation: ConversationId,
    job: { id?: string; data: InboundJob },
  ): Promise<Route> {
    let queue = this.queues.get(host);
    if (!queue) {
      queue = new Queue<InboundJob>(hostQueue(host), {
        connection: this.deps.redis,
        prefix: bullPrefix(this.options.instance),
      });
      this.queues.set(host, queue);
    }
    const jobId = job.data.kind === 'message' && job.id ? `f-${job.id}` : `fk-${shortHash(conversation)}`;
    await queue.add(job.data.kind, job.data, {
      jobId,
      removeOnComplete: true,
      removeOnFail: { age: 86_400 },
      attempts: 5,
      backoff: { type: 'exponential', delay: 500 },
    });
    return `forwarded to ${host}`;
  }

  private async hostStates(): Promise<Map<string, HostState>> {
    const now = Date.now();
    if (this.states && now - this.states.at < STATES_TTL_MS) return this.states.value;
    const { reports, draining } = await readHosts(this.deps.redis, this.options.instance);
    const value = hostStates(reports, draining, now, this.options.graceMs);
    this.states = { at: now, value };
    return value;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}

type MoveHome = (...args: (string | number)[]) => Promise<unknown>;
