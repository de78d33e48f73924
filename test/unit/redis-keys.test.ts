import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import {
  auditKeys,
  blobKeys,
  bullPrefix,
  conversationKeys,
  delegationResultKey,
  hostQueue,
  instanceKeys,
  limitKeys,
  messageSeenKey,
  modelGateKeys,
  SCHEDULE_QUEUE,
  scheduleKeys,
  taskKeys,
  webKeys,
} from '../../src/contracts/redis/keys.js';
import { ConversationOwners } from '../../src/shared/stores/conversation-owner.js';
import { NetworkPolicyStore } from '../../src/shared/stores/policy-store.js';
import { Quarantine } from '../../src/shared/stores/quarantine.js';
import { SkillEnablement } from '../../src/shared/stores/skill-enablement.js';
import { WorkspaceBaselines } from '../../src/worker/audit/workspace-baselines.js';
import { ContextFoldStore } from '../../src/worker/broker/context-fold-store.js';
import { Canary } from '../../src/worker/turn/canary.js';
import { OutboxLedger } from '../../src/worker/turn/outbox-ledger.js';

// The key strings are where the data already in Redis lives: these pin them, so a refactoring of how
// they are built cannot move them. `h` is conversationKey('web:alice') (80 bits of sha256, hex).
const alice = webConversationId('alice');
const h = 'df3e34eb8374f3847eed';

describe('Redis keys', () => {
  it('keeps the per-conversation keys where they were', () => {
    expect(conversationKeys('sb', alice)).toEqual({
      seq: `sb:conv:${h}:seq`,
      pending: `sb:conv:${h}:pending`,
      messages: `sb:conv:${h}:messages`,
      done: `sb:conv:${h}:done`,
      inflight: `sb:conv:${h}:inflight`,
      runner: `sb:conv:${h}:runner`,
      claim: `sb:conv:${h}:claim`,
      lease: `sb:conv:${h}:lease`,
      network: `sb:conv:${h}:network`,
      quarantine: `sb:conv:${h}:quarantine`,
      skills: `sb:conv:${h}:skills`,
      outbox: `sb:conv:${h}:outbox`,
      canary: `sb:conv:${h}:canary`,
      workspaceMark: `sb:conv:${h}:workspace-mark`,
      owner: `sb:conv:${h}:owner`,
      contextFold: `sb:conv:${h}:context-fold`,
      hostNotice: `sb:conv:${h}:host-notice`,
    });
    // shortHash('msg-1')
    expect(messageSeenKey('sb', alice, 'msg-1')).toBe(`sb:conv:${h}:pending:seen:3a0de37932e8b19746f2`);
  });

  it('keeps the instance, audit, task, file, delegation and web keys where they were', () => {
    expect(bullPrefix('sb')).toBe('sb:bull');
    const instance = instanceKeys('sb');
    expect([
      instance.active,
      instance.lastUsed,
      instance.control,
      instance.layers,
      instance.egressSecret,
    ]).toEqual(['sb:active', 'sb:sandbox:last-used', 'sb:control', 'sb:layers', 'sb:egress:secret']);
    expect(instance.poolOwner('pool-1')).toBe('sb:pool-owner:pool-1');
    expect([instance.hosts, instance.homes, instance.drainingHosts]).toEqual([
      'sb:hosts',
      'sb:homes',
      'sb:hosts:draining',
    ]);
    // A host's own inbound queue: BullMQ names take no ':' (old engine IDs are colon-separated).
    expect(hostQueue('ABCD:EF12')).toBe('inbound-host-ABCD-EF12');
    expect(auditKeys('sb', alice)).toEqual({
      stream: 'sb:audit:stream',
      dirty: 'sb:audit:dirty',
      pending: `sb:audit:${h}:pending`,
      lock: `sb:audit:${h}:lock`,
      head: `sb:audit:${h}:head`,
    });
    const tasks = taskKeys('sb');
    expect(tasks.task('web:alice')).toBe(`sb:task:${h}`);
    expect(tasks.tree('web:alice')).toBe(`sb:task:${h}:tree`);
    expect(tasks.counter('web:alice', 'subagents')).toBe(`sb:task:${h}:subagents`);
    // shortHash('slack:T1:C1')
    expect(tasks.scope('slack:T1:C1')).toBe('sb:tasks:scope:5a2577fc9685e751c42a');
    expect([tasks.running, tasks.waiting, tasks.admitLock]).toEqual([
      'sb:tasks:running',
      'sb:tasks:waiting',
      'sb:tasks:admit-lock',
    ]);
    expect(blobKeys('sb').blob('b1')).toBe('sb:blob:b1');
    expect(blobKeys('sb').prefix).toBe('sb:blob:');
    expect(delegationResultKey('sb', alice)).toBe(`sb:delegation:${h}:result`);
    const limits = limitKeys('sb');
    // shortHash('web:alice') is h too: a person is `<platform>:<user id>`.
    const person = h;
    expect(limits.messages('web:alice')).toBe(`sb:limit:messages:${person}`);
    expect(limits.conversations('web:alice')).toBe(`sb:limit:conversations:${person}`);
    expect(limits.noticed('web:alice', 'messages_per_minute')).toBe(
      `sb:limit:noticed:messages_per_minute:${person}`,
    );
    expect(limits.streams(alice)).toBe(`sb:limit:streams:${h}`);
    expect(limits.allStreams).toBe('sb:limit:streams');
    // shortHash('http://127.0.0.1:11434')
    expect(modelGateKeys('sb', 'http://127.0.0.1:11434')).toEqual({
      holders: 'sb:model-gate:b26993598dffd1f14aed:holders',
      queue: 'sb:model-gate:b26993598dffd1f14aed:queue',
      waiters: 'sb:model-gate:b26993598dffd1f14aed:waiters',
      seq: 'sb:model-gate:b26993598dffd1f14aed:seq',
    });
    expect(webKeys.events('sb', alice)).toBe(`sb:web:events:${h}`);
    expect(webKeys.delivered('sb', 'e1')).toBe('sb:web:delivered:e1');
  });

  it('keeps the schedule keys where they were', () => {
    const schedules = scheduleKeys('sb');
    expect(SCHEDULE_QUEUE).toBe('schedules');
    expect(schedules.schedule('s-abcdefghij')).toBe('sb:schedule:s-abcdefghij');
    expect(schedules.all).toBe('sb:schedules');
    expect(schedules.conversation(alice)).toBe(`sb:schedules:conv:${h}`);
    // shortHash('web:alice') is h; shortHash('slack:T1:C1') as for the task scopes above.
    expect(schedules.owner('web:alice')).toBe(`sb:schedules:owner:${h}`);
    expect(schedules.channel('slack:T1:C1')).toBe('sb:schedules:channel:5a2577fc9685e751c42a');
  });

  it('has each per-conversation store use its own key', async () => {
    const touched: string[] = [];
    const note = (key: string) => {
      touched.push(key);
      return Promise.resolve(null);
    };
    const redis = {
      get: note,
      set: note,
      del: note,
      eval: (_script: string, _keys: number, key: string) => note(key),
      // SkillEnablement reads the one-hour skills of approvals too (a key of approvalKeys, not conversationKeys).
      zrangebyscore: () => Promise.resolve([]),
    } as unknown as Redis;
    await new NetworkPolicyStore(redis, 'sb', []).grantsFor(alice);
    await new Quarantine(redis, 'sb').get(alice);
    await new SkillEnablement(redis, 'sb', []).enabledFor(alice);
    await new OutboxLedger(redis, 'sb').clear(alice);
    await new Canary(redis, 'sb').token(alice);
    await new WorkspaceBaselines(redis, 'sb').claim(alice, undefined);
    await new ConversationOwners(redis, 'sb').get(alice);
    await new ContextFoldStore(redis, 'sb').get(alice);
    expect(touched).toEqual(
      ['network', 'quarantine', 'skills', 'outbox', 'canary', 'workspace-mark', 'owner', 'context-fold'].map(
        (k) => `sb:conv:${h}:${k}`,
      ),
    );
  });
});

// ── One module ──────────────────────────────────────────────────────────────────────────────────────

/** A Lua script, or a key built from the instance name: both belong in src/contracts/redis/. */
const REDIS_SCHEMA = /redis\.call\(|\$\{[^}]*instance[^}]*\}:/i;

const SCANNED = ['src', 'adapters', 'sandbox'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => join(entry.parentPath, entry.name));
}

describe('the Redis schema', () => {
  it('is defined in src/contracts/redis/ only: no key template or Lua script elsewhere', () => {
    const outside: string[] = [];
    for (const file of SCANNED.flatMap(sourceFiles)) {
      if (file.startsWith('src/contracts/redis/')) continue;
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (REDIS_SCHEMA.test(line)) outside.push(`${file}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(outside).toEqual([]);
  });
});
