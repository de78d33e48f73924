import type { Redis } from 'ioredis';
import type { AuditActor } from '../../contracts/audit/events.js';
import type { Config } from '../../contracts/config/schema.js';
import type { Logger } from '../../contracts/log/logger.js';
import type { OutboundEvent } from '../../contracts/protocol/outbound.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import { sandbotMetrics } from '../../shared/metrics.js';
import { ApprovalAllowances } from '../../shared/stores/approval-allowances.js';
import { ApprovalStore } from '../../shared/stores/approval-store.js';
import { ConversationOwners } from '../../shared/stores/conversation-owner.js';
import { SkillEnablement } from '../../shared/stores/skill-enablement.js';
import type { EgressService } from '../egress/egress-service.js';
import { openSkillStore } from '../skills/open-store.js';
import { resolveSkills } from '../skills/resolve.js';
import { SkillControl } from '../skills/skill-control.js';
import { AccessRequests } from './access-requests.js';
import type { SkillApprovals } from './approval-apply.js';

/** The `request_access` host tool of a worker, wired from config and the worker's parts. */
export function accessRequestsFor(
  config: Config,
  parts: {
    connection: Redis;
    egress: Pick<EgressService, 'policy'>;
    publish(event: OutboundEvent): Promise<void>;
    audit?: AuditRecorder;
    logger: Logger;
    actor(): AuditActor;
  },
): AccessRequests {
  const instance = config.SANDBOT_INSTANCE;
  const metrics = sandbotMetrics();
  return new AccessRequests({
    // The store records each request's end (approval.decided) in the audit, whoever ends it.
    store: new ApprovalStore(parts.connection, instance, parts.audit),
    redis: parts.connection,
    publish: parts.publish,
    ownerOf: (conversation) => new ConversationOwners(parts.connection, instance).get(conversation),
    apply: {
      network: parts.egress.policy,
      allowances: new ApprovalAllowances(parts.connection, instance),
      skills: skillApprovals(config, parts.connection, parts.audit),
      ...(parts.audit ? { audit: parts.audit } : {}),
    },
    ...(parts.audit ? { audit: parts.audit } : {}),
    actor: parts.actor,
    logger: parts.logger,
    settings: {
      timeoutSeconds: config.SANDBOT_APPROVAL_TIMEOUT_SECONDS,
      turnSeconds: config.SANDBOX_TURN_TIMEOUT_SECONDS,
    },
    counted: (kind, outcome) => metrics.approvals.inc({ kind, outcome }),
  });
}

/** Skills as `skill enable` treats them: only an approved, unchanged skill in the skills store. */
function skillApprovals(config: Config, redis: Redis, audit: AuditRecorder | undefined): SkillApprovals {
  const store = openSkillStore(config);
  const control = new SkillControl(
    store,
    new SkillEnablement(redis, config.SANDBOT_INSTANCE, config.SANDBOT_SKILLS),
    audit,
  );
  return {
    async refusal(name) {
      try {
        const { active, refused } = await resolveSkills(store, [{ name }]);
        return active.length > 0 ? undefined : (refused[0]?.reason ?? 'no such skill');
      } catch (error) {
        return `the skills store cannot be read (${(error as Error).message})`;
      }
    },
    enable: (conversation, name, by) => control.enable(conversation, { name }, by),
  };
}
