import type { Approval } from '../contracts/approvals/approval.js';
import type { OutboundEvent } from '../contracts/protocol/outbound.js';
import type { ApprovalStore } from '../shared/stores/approval-store.js';
import type { DeliveryOnce } from './delivery-once.js';

export type ApprovalEvent = Extract<OutboundEvent, { type: 'approval' }>;

/** How a platform posts a card (answering where it is, to edit it later) and edits one in place. */
export interface CardPoster {
  platform: 'slack' | 'discord';
  post(approval: Approval): Promise<Record<string, string>>;
  edit(ref: Record<string, string>, approval: Approval): Promise<void>;
}

/**
 * An `approval` event into the conversation's thread, the same for Slack and Discord. One message per
 * request, whatever the number of events and retries: the post is claimed under the request's id (not
 * the event's), so a retried pending event posts nothing, and a final event that comes first posts
 * the card in its final state. Each later event edits the card, which repeats harmlessly. The card
 * shows the store's state, which is never older than the event's.
 */
export async function deliverApprovalCard(
  event: ApprovalEvent,
  deps: { approvals: ApprovalStore; claims: DeliveryOnce; poster: CardPoster },
): Promise<void> {
  const { approvals, claims, poster } = deps;
  const approval = (await approvals.get(event.approval.id)) ?? event.approval;
  // The card's place outlives the claim's record: a card once posted is only ever edited.
  const known = await approvals.cardRef(approval.id, poster.platform);
  const posted =
    !known &&
    (await claims.once(`approval:${approval.id}:card`, async () => {
      const ref = await poster.post(approval);
      await approvals.setCardRef(approval.id, poster.platform, ref);
      return true;
    }));
  if (posted || approval.status === 'pending') return;
  const ref = known ?? (await approvals.cardRef(approval.id, poster.platform));
  if (ref) await poster.edit(ref, approval);
}
