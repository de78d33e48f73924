import type { SandboxNetwork } from '../../../sandbox/host/driver/docker-spec.js';
import type { SandboxDriver } from '../../../sandbox/host/driver/types.js';
import type { Config } from '../../contracts/config/schema.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import type { ChatMessage } from '../../contracts/protocol/agent.js';
import type { OutboundEvent } from '../../contracts/protocol/outbound.js';
import type { SkillAccess, SkillToolDefinition } from '../../contracts/protocol/skill-tools.js';
import type { Turn } from '../../shared/queue/conversation-store.js';
import type { BlobStore } from '../../shared/stores/blob-store.js';
import type { TrailMode, TurnTrail } from '../audit/turn-trail.js';
import type { FitContext } from '../broker/context-window.js';
import type { FallbackUsed } from '../broker/routed-broker.js';
import type { TurnSkills } from '../skills/turn-skills.js';
import type { HostTools } from './host-tool-relay.js';
import type { OutboxLedger } from './outbox-ledger.js';

/** What a turn needs: the driver, the model broker, where events go, and the policies that apply. */

/** What the turn runner needs of the model broker. */
export interface ModelChat {
  chat(request: {
    model: string;
    system: string;
    messages: ChatMessage[];
    signal?: AbortSignal;
    /** The enabled skills' tools, besides the built-in ones. */
    tools?: SkillToolDefinition[];
    /** Called once if the request waits for the model server (SANDBOT_MODEL_CONCURRENCY). */
    onWait?: (ahead: number) => void;
    /** The conversation, for fitting its history into the model's context window. */
    fit?: FitContext;
  }): Promise<{
    message: ChatMessage;
    promptTokens?: number;
    completionTokens?: number;
    /** The model that answered, when the broker routes (it may be the fallback). */
    model?: string;
    /** Set when the fallback answered instead of the model asked for. */
    fallback?: FallbackUsed;
  }>;
  /** Forgets what it kept of the conversation's history (its fold): the history was wiped. */
  forget?(conversation: ConversationId): Promise<void>;
}

export interface TurnRunnerDeps {
  driver: SandboxDriver;
  broker: ModelChat;
  publish: (event: OutboundEvent) => Promise<void>;
  logger: Logger;
  systemPrompt: string;
  blobs: BlobStore;
  /** The network a conversation's sandbox joins (its grants); absent or undefined: none. */
  networkFor?: (conversation: ConversationId) => Promise<SandboxNetwork | undefined>;
  /** The conversation's canary token, planted in its workspace before each turn (a tripwire). */
  canaryFor?: (conversation: ConversationId) => Promise<string>;
  /** Each named skill's own proxy credential in that network (egress-service.ts skillAccess). */
  skillAccessFor?: (
    conversation: ConversationId,
    network: SandboxNetwork,
    skills: readonly string[],
  ) => SkillAccess[];
  /** The conversation's enabled skills for a turn: verified, mounted read-only, their tools offered. */
  skillsFor?: (conversation: ConversationId, turnId: string) => Promise<TurnSkills>;
  /** Tools the worker carries out itself (`delegate`); absent: none offered. */
  hostTools?: HostTools;
  /** Kills and quarantines the conversation (a tripwire fired). */
  tripwire?: (conversation: ConversationId, reason: string) => void;
  ledger: OutboxLedger;
  /** Records each turn in the audit log and the metrics; absent: not recorded. */
  observe?: (turn: Turn, mode: TrailMode) => TurnTrail;
  config: Pick<
    Config,
    | 'SANDBOT_FILE_MAX_BYTES'
    | 'SANDBOT_MODEL'
    | 'SANDBOX_TOOL_TIMEOUT_SECONDS'
    | 'SANDBOX_TOOL_OUTPUT_BYTES'
    | 'SANDBOX_TURN_TIMEOUT_SECONDS'
    | 'SANDBOT_MAX_MODEL_CALLS_PER_TURN'
    | 'SANDBOT_MAX_TOKENS_PER_TURN'
  > &
    Partial<Pick<Config, 'SANDBOT_MODEL_RULES'>>;
}

export type TurnOutcome = 'replied' | 'failed' | 'stopped' | 'killed' | 'abandoned';
