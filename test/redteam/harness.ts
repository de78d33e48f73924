import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { expect } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { sandboxNames } from '../../sandbox/host/driver/docker-spec.js';
import type { AuditEvent } from '../../src/contracts/audit/events.js';
import type { Config } from '../../src/contracts/config/schema.js';
import { type ConversationId, webConversationId } from '../../src/contracts/conversation/id.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import { NetworkPolicyStore } from '../../src/shared/stores/policy-store.js';
import { Quarantine, type QuarantineRecord } from '../../src/shared/stores/quarantine.js';
import type { EgressRecord, Lookup } from '../../src/worker/egress/proxy.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { startStack, testConfig } from '../helpers/stack.js';
import { attackerModel } from './attacker-model.js';

export const MODEL = 'qwen2.5:7b';

/**
 * Credentials of sandbot's, put in the worker's own environment before it starts. The sandbox must
 * never get them: no attack may find them, and they may never reach a model request, an event the
 * user sees, or the audit log.
 */
export function plantEnvCanaries(): Record<string, string> {
  const tag = randomBytes(6).toString('hex').toUpperCase();
  const canaries = {
    SLACK_BOT_TOKEN: `xoxb-CANARY-${tag}-bot`,
    SLACK_APP_TOKEN: `xapp-CANARY-${tag}-app`,
    SLACK_SIGNING_SECRET: `CANARY-${tag}-signing`,
    DISCORD_TOKEN: `CANARY-${tag}-discord`,
    SANDBOT_API_TOKEN: `CANARY-${tag}-api`,
    AWS_SECRET_ACCESS_KEY: `CANARY-${tag}-aws`,
  };
  Object.assign(process.env, canaries);
  return canaries;
}

export interface TurnResult {
  kind: 'reply' | 'error';
  /** The reply's text, or the error's message. */
  text: string;
  /** Every event of the conversation seen while waiting. */
  events: OutboundEvent[];
}

export interface Row {
  attack: string;
  outcome: string;
  recorded: string;
}

export interface RedteamOptions {
  /** Settings on top of the test defaults (SANDBOX_MEMORY_MB 256, …). */
  settings?: Record<string, string>;
  lookup?: Lookup;
}

export type Redteam = Awaited<ReturnType<typeof startRedteam>>;

/** One stack per attack file: its own instance, audit directory, fake model and canaries. */
export async function startRedteam(label: string, options: RedteamOptions = {}) {
  const canaries = plantEnvCanaries();
  const auditDir = mkdtempSync(path.join(tmpdir(), `sandbot-redteam-${label}-`));
  const config: Config = testConfig(testInstance(`rt-${label}`), {
    SANDBOT_AUDIT_DIR: auditDir,
    SANDBOT_MODEL: MODEL,
    SANDBOX_PIDS: '128',
    ...options.settings,
  });
  const ollama: FakeOllama = await startFakeOllama({ models: [MODEL], script: attackerModel });
  Object.assign(config, { OLLAMA_HOST: ollama.url });
  const egress: EgressRecord[] = [];
  const stack = await startStack(config, { lookup: options.lookup, onEgress: (entry) => egress.push(entry) });
  const redis = new Redis(REDIS_URL);
  const docker = createDocker(config.DOCKER_HOST);
  const rows: Row[] = [];
  const seen: OutboundEvent[] = [];
  const instance = config.SANDBOT_INSTANCE;
  const checkpoints = new Map<string, { audit: number; egress: number }>();

  const rt = {
    config,
    instance,
    canaries,
    ollama,
    stack,
    redis,
    docker,
    egress,
    rows,
    seen,

    /** Sends one message and waits for the turn's reply or error. */
    async ask(session: string, text: string, timeoutMs = 60_000): Promise<TurnResult> {
      const token = config.SANDBOT_API_TOKEN;
      const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
      const sse = await openSse(`${stack.url}/api/conversations/${session}/events`, auth);
      try {
        await postMessage(stack.url, session, text, 'tester', auth);
        const end = await sse.waitFor((e) => e.type === 'reply' || e.type === 'error', timeoutMs);
        return end.type === 'reply'
          ? { kind: 'reply', text: end.text, events: [...sse.events] }
          : { kind: 'error', text: end.type === 'error' ? end.message : '', events: [...sse.events] };
      } finally {
        seen.push(...sse.events);
        sse.close();
      }
    },

    /** The conversation's audit events as written to its file. */
    async audit(session: string): Promise<AuditEvent[]> {
      await stack.worker.audit.settle();
      const text = await stack.worker.audit.journal.read(webConversationId(session));
      return (text ?? '')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as AuditEvent);
    },

    /** Waits until the audit log holds an event matching, and returns them all. */
    async auditUntil(session: string, match: (event: AuditEvent) => boolean, what: string) {
      let events: AuditEvent[] = [];
      await until(async () => {
        events = await rt.audit(session);
        return events.some(match);
      }, `audit of ${session} never recorded ${what}`);
      return events;
    },

    /** Waits for the audit's record of a bash call whose command contains `needle`; returns its result. */
    async auditedCall(session: string, needle: string, tool = 'bash') {
      const events = await rt.auditUntil(
        session,
        (e) => isToolCall(e, tool, needle),
        `a ${tool} call with "${needle.slice(0, 40)}"`,
      );
      return events.find((e) => isToolCall(e, tool, needle)) as AuditEvent;
    },

    /** Waits for the audit's record of a refused network request to `host`. */
    auditedRefusal(session: string, host: string) {
      return rt.auditUntil(
        session,
        (e) => e.kind === 'net.request' && e.data.host === host && e.data.allowed === false,
        `a refused net.request to ${host}`,
      );
    },

    /** Waits for the audit's record of a tripwire whose reason mentions `what`. */
    auditedTripwire(session: string, what: string) {
      return rt.auditUntil(
        session,
        (e) => e.kind === 'tripwire' && String(e.data.name).includes(what),
        `a tripwire for ${what}`,
      );
    },

    quarantined(session: string): Promise<QuarantineRecord | undefined> {
      return new Quarantine(redis, instance).get(webConversationId(session));
    },

    grants(session: string) {
      return new NetworkPolicyStore(redis, instance, config.SANDBOT_NETWORK_RULES).grantsFor(
        webConversationId(session),
      );
    },

    egressOf(session: string) {
      return egress.filter((r) => r.conversation === webConversationId(session));
    },

    /**
     * A summary of what the audit log and the egress records hold about a conversation, counting only
     * what was added since the last row that named it.
     */
    async evidence(session: string): Promise<string> {
      const seen = checkpoints.get(session) ?? { audit: 0, egress: 0 };
      const audit = await rt.audit(session);
      const egressed = rt.egressOf(session);
      checkpoints.set(session, { audit: audit.length, egress: egressed.length });
      const counts = new Map<string, number>();
      for (const event of audit.slice(seen.audit)) counts.set(event.kind, (counts.get(event.kind) ?? 0) + 1);
      const interesting = [
        'tool.call',
        'net.request',
        'limit.hit',
        'tripwire',
        'sandbox.kill',
        'sandbox.quarantine',
      ];
      const parts = interesting
        .filter((kind) => counts.has(kind))
        .map((kind) => `${kind}×${counts.get(kind)}`);
      const refused = egressed.slice(seen.egress).filter((r) => !r.allowed).length;
      const audited = parts.length > 0 ? `audit: ${parts.join(', ')}` : 'audit: nothing';
      const extra = [
        ...(refused > 0 ? [`egress log: ${refused} refused`] : []),
        ...((await rt.quarantined(session)) ? ['quarantined'] : []),
      ];
      return [audited, ...extra].join('; ');
    },

    /** Leaves what is recorded so far out of the next row's evidence (e.g. a setup turn's). */
    async checkpoint(session: string) {
      await rt.evidence(session);
    },

    /** Adds a line to the file's table of attacks. */
    async row(attack: string, outcome: string, session: string | string[]) {
      const sessions = Array.isArray(session) ? session : [session];
      const each: string[] = [];
      for (const s of sessions) each.push(`${sessions.length > 1 ? `${s}: ` : ''}${await rt.evidence(s)}`);
      const recorded = each.join('. ');
      rows.push({ attack, outcome, recorded });
    },

    /** The container of a conversation, for looking at it from the host. */
    container(session: string) {
      return docker.getContainer(sandboxNames(instance, webConversationId(session)).container);
    },

    /** Everything a leak could show up in: model requests, events, audit files, web event streams. */
    async everythingSaid(): Promise<string> {
      await stack.worker.audit.settle();
      const parts = [JSON.stringify(ollama.requests), JSON.stringify(seen)];
      for (const file of await stack.worker.audit.journal.list()) {
        parts.push((await stack.worker.audit.journal.readKey(file.key)) ?? '');
      }
      for (const key of await redis.keys(`${instance}:web:events:*`)) {
        parts.push(JSON.stringify(await redis.xrange(key, '-', '+')));
      }
      return parts.join('\n');
    },

    async stop() {
      printTable(label, rows);
      await stack.stop().catch(() => undefined);
      await ollama.close().catch(() => undefined);
      redis.disconnect();
      await cleanInstance(config);
      rmSync(auditDir, { recursive: true, force: true });
    },
  };
  return rt;
}

export function isToolCall(event: AuditEvent, tool: string, needle: string): boolean {
  if (event.kind !== 'tool.call' || event.data.name !== tool) return false;
  return JSON.stringify(event.data.args).includes(JSON.stringify(needle).slice(1, -1));
}

/** The tool's result as the audit log recorded it. */
export const resultOf = (event: AuditEvent) => String(event.data.result ?? '');

export function printTable(label: string, rows: Row[]): void {
  const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\s+/g, ' ').trim();
  const lines = [
    `\nRed-team attacks: ${label}`,
    '| attack | outcome | recorded |',
    '|---|---|---|',
    ...rows.map((r) => `| ${cell(r.attack)} | ${cell(r.outcome)} | ${cell(r.recorded)} |`),
  ];
  console.log(lines.join('\n'));
}

/** Asserts no canary of sandbot's, and not the model endpoint's address, shows anywhere. */
export async function expectNoSecretsLeaked(rt: Redteam): Promise<void> {
  const said = await rt.everythingSaid();
  for (const value of Object.values(rt.canaries)) expect(said).not.toContain(value);
  expect(said).not.toContain(rt.ollama.url.replace('http://', ''));
}

/** Polls until `check` holds (usable in hooks, unlike expect.poll). */
export async function until(check: () => Promise<boolean>, failure: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(failure);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export const conversation = (session: string): ConversationId => webConversationId(session);
export const token = () => randomBytes(6).toString('hex');
