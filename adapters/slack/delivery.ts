import type { webApi } from '@slack/bolt';
import { UnrecoverableError } from 'bullmq';
import type { Logger } from '../../src/contracts/log/logger.js';
import type { FileRef, InboundMessage } from '../../src/contracts/protocol/inbound.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import { type ApprovalEvent, deliverApprovalCard } from '../../src/gateway/approval-delivery.js';
import type { DeliveryOnce } from '../../src/gateway/delivery-once.js';
import type { ApprovalStore } from '../../src/shared/stores/approval-store.js';
import type { BlobStore } from '../../src/shared/stores/blob-store.js';
import { slackApprovalCard } from './approval-card.js';
import type { ProgressMessages } from './progress-message.js';
import { SlackRoute, slackConversationId } from './slack-event.js';
import { escapeForSlack, MAX_PARTS, preview, splitForSlack } from './slack-text.js';

export interface DeliveryDeps {
  client: webApi.WebClient;
  claims: DeliveryOnce;
  progress: ProgressMessages;
  blobs: Pick<BlobStore, 'get'>;
  logger: Logger;
  /** Approval requests: the card's current state and where it was posted. */
  approvals: ApprovalStore;
  /** Submits a scheduled run into the thread made for it. */
  submit: (message: InboundMessage) => Promise<unknown>;
}

/** The turn an event belongs to: its `turnId`, else the id up to the event's own suffix. */
export function turnOf(event: Pick<OutboundEvent, 'id' | 'turnId'>): string {
  if (event.turnId) return event.turnId;
  const progress = event.id.indexOf(':progress:');
  if (progress > 0) return event.id.slice(0, progress);
  const last = event.id.lastIndexOf(':');
  return last > 0 ? event.id.slice(0, last) : event.id;
}

/** "tool:3" for `<turn>:progress:tool:3`; undefined for the turn's start. */
export function progressStep(eventId: string, turnId: string): string | undefined {
  const prefix = `${turnId}:progress:`;
  const step = eventId.startsWith(prefix) ? eventId.slice(prefix.length) : eventId;
  return step === 'start' ? undefined : step;
}

/**
 * Delivers outbound events into the conversation's thread. Every post is claimed by a key derived from
 * the event id (and the part), so a retried delivery or a rerun turn posts nothing twice; any failure
 * throws, and the outbound queue retries what was not posted.
 */
export class SlackDelivery {
  constructor(private readonly deps: DeliveryDeps) {}

  async deliver(event: OutboundEvent): Promise<void> {
    const parsed = SlackRoute.safeParse(event.route);
    if (!parsed.success) {
      throw new UnrecoverableError(
        `event ${event.id} has no Slack route to answer on: ${parsed.error.issues[0]?.message}`,
      );
    }
    const route = parsed.data;
    const turnId = turnOf(event);
    switch (event.type) {
      case 'progress':
        return this.deps.progress.step(turnId, route, progressStep(event.id, turnId), event.text);
      case 'reply': {
        const stopped = event.id.endsWith(':stopped');
        await this.deps.progress.finish(turnId, stopped ? 'stopped' : 'done');
        await this.postText(event.id, route, event.text);
        for (const [index, file] of (event.files ?? []).entries()) {
          await this.deps.claims.once(`${event.id}#file:${index}`, () => this.upload(route, file));
        }
        return this.react(route, stopped ? 'octagonal_sign' : 'white_check_mark');
      }
      case 'error':
        await this.deps.progress.finish(turnId, 'failed');
        await this.deps.claims.once(event.id, () => this.post(route, `:x: ${escapeForSlack(event.message)}`));
        return this.react(route, 'x');
      case 'thread_start':
        return this.startThread(event, route);
      case 'approval':
        return this.approvalCard(event, route);
    }
  }

  /** The approval card in the thread, posted once and edited in place as the request ends. */
  private approvalCard(event: ApprovalEvent, route: SlackRoute): Promise<void> {
    const { client } = this.deps;
    return deliverApprovalCard(event, {
      approvals: this.deps.approvals,
      claims: this.deps.claims,
      poster: {
        platform: 'slack',
        async post(approval) {
          const posted = await client.chat.postMessage({
            channel: route.channel,
            ...slackApprovalCard(approval),
            ...(route.thread_ts ? { thread_ts: route.thread_ts } : {}),
            unfurl_links: false,
            unfurl_media: false,
          });
          if (!posted.ts) throw new Error(`Slack did not say where the card of ${approval.id} is`);
          return { channel: posted.channel ?? route.channel, ts: posted.ts };
        },
        async edit(ref, approval) {
          await client.chat.update({
            channel: ref.channel ?? route.channel,
            ts: ref.ts ?? '',
            ...slackApprovalCard(approval),
          });
        },
      },
    });
  }

  /**
   * A scheduled run in a thread of its own: its title posted in the channel, the run submitted in the
   * thread that post starts. Both in one claim: a failed submit posts again on the retry rather than
   * leave a thread without its run.
   */
  private async startThread(event: Extract<OutboundEvent, { type: 'thread_start' }>, route: SlackRoute) {
    await this.deps.claims.once(event.id, async () => {
      const posted = await this.deps.client.chat.postMessage({
        channel: route.channel,
        text: escapeForSlack(event.title),
        unfurl_links: false,
        unfurl_media: false,
      });
      if (!posted.ts) throw new Error(`Slack did not say where the thread of ${event.id} starts`);
      await this.deps.submit({
        ...event.run,
        conversation: slackConversationId(route.team, route.channel, posted.ts),
        route: { team: route.team, channel: route.channel, thread_ts: posted.ts },
      });
    });
  }

  /** Short text in one message; longer text split into a few; longer still, attached as a file. */
  private async postText(eventId: string, route: SlackRoute, text: string): Promise<void> {
    if (text.trim() === '') return;
    const parts = splitForSlack(text);
    if (parts.length > MAX_PARTS) {
      await this.deps.claims.once(`${eventId}#text`, async () => {
        await this.deps.client.filesUploadV2({
          ...uploadDestination(route),
          file: Buffer.from(text),
          filename: 'reply.md',
          title: 'reply.md',
          initial_comment: `${escapeForSlack(preview(text))}\n_(the whole reply is long: it is attached as reply.md)_`,
        });
      });
      return;
    }
    for (const [index, part] of parts.entries()) {
      await this.deps.claims.once(`${eventId}#${index}`, () => this.post(route, escapeForSlack(part)));
    }
  }

  private async post(route: SlackRoute, text: string): Promise<void> {
    await this.deps.client.chat.postMessage({
      channel: route.channel,
      text,
      ...(route.thread_ts ? { thread_ts: route.thread_ts } : {}),
      // Slack fetching links an agent wrote would let it reach (and leak to) any URL.
      unfurl_links: false,
      unfurl_media: false,
    });
  }

  private async upload(route: SlackRoute, file: FileRef): Promise<void> {
    const bytes = await this.deps.blobs.get(file.blobKey);
    if (bytes === null) {
      await this.post(
        route,
        `_${escapeForSlack(file.name)} could not be attached: it expired before it was delivered._`,
      );
      return;
    }
    await this.deps.client.filesUploadV2({
      ...uploadDestination(route),
      file: bytes,
      filename: file.name,
      title: file.name,
    });
  }

  /** 👀 comes off the message the turn answered, and the outcome goes on; a failed reaction only logs. */
  private async react(route: SlackRoute, name: string): Promise<void> {
    if (!route.ts) return;
    const target = { channel: route.channel, timestamp: route.ts };
    await this.deps.client.reactions
      .remove({ ...target, name: 'eyes' })
      .catch((error) => this.reactionFailed(error, 'no_reaction'));
    await this.deps.client.reactions
      .add({ ...target, name })
      .catch((error) => this.reactionFailed(error, 'already_reacted'));
  }

  private reactionFailed(error: unknown, expected: string): void {
    if ((error as { data?: { error?: string } }).data?.error === expected) return;
    this.deps.logger.warn({ err: error }, 'a Slack reaction failed');
  }
}

/** The thread (or, at a DM's top level, the channel) a file is shared into. */
function uploadDestination(
  route: SlackRoute,
): { channel_id: string; thread_ts: string } | { channel_id: string } {
  return route.thread_ts
    ? { channel_id: route.channel, thread_ts: route.thread_ts }
    : { channel_id: route.channel };
}
