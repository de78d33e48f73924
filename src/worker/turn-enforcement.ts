import type { SandboxDriver } from '../../sandbox/host/driver/types.js';
import type { ConversationId } from '../contracts/conversation/id.js';
import type { Logger } from '../contracts/log/logger.js';
import type { AuditRecorder } from '../shared/audit/audit-log.js';
import { ControlMessage } from '../shared/queue/conversation-control.js';
import type { Quarantine } from '../shared/stores/quarantine.js';
import type { EgressRecord } from './egress/proxy.js';
import type { StopReason } from './turn/stop-reason.js';

export interface TurnEnforcementDeps {
  driver: SandboxDriver;
  quarantine: Quarantine;
  audit?: AuditRecorder;
  logger: Logger;
}

/**
 * What stops the turns a worker runs: the switch of each running turn, the `stop` and `kill` commands
 * sent to it, tripwires (quarantine, then kill) and the count of a turn's refused egress that trips one.
 */
export class TurnEnforcement {
  /** Conversations this worker is running, with the switch a `stop` command pulls. */
  private readonly running = new Map<ConversationId, AbortController>();
  private readonly refusals = new Map<ConversationId, number>();

  constructor(
    private readonly deps: TurnEnforcementDeps,
    private readonly options: {
      /** Who acts, in the audit log. */
      actor: string;
      /** Refused egress requests in one turn that kill the sandbox. */
      egressRefusalTripwire: number;
    },
  ) {}

  /** A turn of the conversation starts: its refusals count from zero; returns its stop signal. */
  begin(conversation: ConversationId): AbortSignal {
    const stop = new AbortController();
    this.running.set(conversation, stop);
    this.refusals.delete(conversation);
    return stop.signal;
  }

  end(conversation: ConversationId): void {
    this.running.delete(conversation);
  }

  /** A message on the instance's control channel: `stop` ends a running turn, `kill` its sandbox too. */
  onControl(raw: string): void {
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      json = undefined;
    }
    const parsed = ControlMessage.safeParse(json);
    if (!parsed.success) return void this.deps.logger.warn({ raw: raw.slice(0, 200) }, 'bad control message');
    const message = parsed.data;
    if (message.action === 'stop') {
      this.running.get(message.conversation)?.abort({ kind: 'stop', by: message.by } satisfies StopReason);
      return;
    }
    void this.kill(message.conversation, message.by, message.reason);
  }

  /** SIGKILLs the conversation's sandbox (if on this worker's engine) and ends its running turn. */
  async kill(conversation: ConversationId, by: string, reason: string): Promise<void> {
    this.running.get(conversation)?.abort({ kind: 'kill', by, reason } satisfies StopReason);
    const killed = await this.deps.driver.kill(conversation).catch((error: unknown) => {
      this.deps.logger.error({ err: error, conversation }, 'kill failed');
      return false;
    });
    this.deps.logger.warn({ audit: 'sandbox.kill', conversation, by, reason, killed }, 'sandbox killed');
    await this.deps.audit?.record({
      conversation,
      actor: this.options.actor,
      kind: 'sandbox.kill',
      data: { by, reason, killed },
    });
  }

  /** A tripwire fired: quarantine first (so no new turn starts), then kill. */
  tripwire(conversation: ConversationId, reason: string): void {
    this.deps.logger.warn({ audit: 'tripwire', conversation, reason }, 'tripwire');
    void this.deps.audit?.record({
      conversation,
      actor: this.options.actor,
      kind: 'tripwire',
      data: { name: reason },
    });
    void this.deps.audit?.record({
      conversation,
      actor: this.options.actor,
      kind: 'sandbox.quarantine',
      data: { reason },
    });
    void this.deps.quarantine
      .put(conversation, reason, 'tripwire')
      .then(() => this.kill(conversation, 'tripwire', reason))
      .catch((error: unknown) =>
        this.deps.logger.error({ err: error, conversation }, 'tripwire kill failed'),
      );
  }

  /** Counts refused egress per conversation during its turn; too many is a tripwire. */
  noteEgress(entry: EgressRecord): void {
    if (entry.allowed || !entry.conversation || !this.running.has(entry.conversation)) return;
    const count = (this.refusals.get(entry.conversation) ?? 0) + 1;
    this.refusals.set(entry.conversation, count);
    if (count === this.options.egressRefusalTripwire) {
      this.tripwire(entry.conversation, `${count} refused network requests in one turn`);
    }
  }
}
