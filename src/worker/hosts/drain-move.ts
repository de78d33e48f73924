import { randomUUID } from 'node:crypto';
import type Dockerode from 'dockerode';
import type { Redis } from 'ioredis';
import { createDocker } from '../../../sandbox/host/driver/docker-client.js';
import type { DockerSandboxDriver } from '../../../sandbox/host/driver/docker-driver.js';
import {
  copySandboxFiles,
  hasVolumes,
  removeConversation,
  stoppedSource,
} from '../../../sandbox/host/driver/volume-copy.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import { instanceKeys } from '../../contracts/redis/keys.js';
import { MOVE_HOME } from '../../contracts/redis/scripts.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import {
  type FreeCommand,
  type HostHandlers,
  MOVE_MS,
  type MoveCommand,
  type MoveReply,
  sendFree,
} from '../../shared/hosts/host-commands.js';
import { readHosts } from '../../shared/hosts/host-report.js';
import type { ConversationStore } from '../../shared/queue/conversation-store.js';

export interface DrainMoverDeps {
  redis: Redis;
  instance: string;
  /** This worker's host. */
  host: string;
  driver: Pick<DockerSandboxDriver, 'prepare' | 'remove'>;
  store: Pick<ConversationStore, 'acquire' | 'pendingCount' | 'yieldTurn'>;
  audit?: AuditRecorder;
  logger: Logger;
}

/**
 * A worker's part in `sandbot host drain` (src/shared/hosts/host-commands.ts). On the destination host,
 * holding the conversation's lease (no turn starts): its sandbox there is made by this worker's driver
 * (size caps and all, under its own disk folder) and the files of the source's stopped sandbox copied in
 * through both engines' archive APIs; then the home moves, the audit says so, and the source's container
 * and Docker volumes are removed, its capped images freed by its own worker. Anything short of that
 * leaves the conversation where it was, with its files, and this host's partial copy discarded.
 * On the source host: frees the images of a conversation that moved away.
 */
export function drainHandlers(deps: DrainMoverDeps): HostHandlers {
  const engines = new Map<string, Dockerode>();
  const engineOf = (endpoint: string) => {
    let engine = engines.get(endpoint);
    if (!engine) {
      engine = createDocker(endpoint);
      engines.set(endpoint, engine);
    }
    return engine;
  };
  return {
    move: (command, signal) => moveHere(deps, command, engineOf, signal),
    free: (command) => freeHere(deps, command),
  };
}

async function moveHere(
  deps: DrainMoverDeps,
  command: MoveCommand,
  engineOf: (endpoint: string) => Dockerode,
  signal: AbortSignal,
): Promise<MoveReply> {
  const { conversation, from } = command;
  if (command.to !== deps.host) return { moved: false, line: `not moved: asked of the wrong host` };
  if ((await homeOf(deps, conversation)) !== from)
    return { moved: false, line: 'not moved: its home changed meanwhile: left as it is' };
  const { reports } = await readHosts(deps.redis, deps.instance);
  const endpoint = reports.filter((r) => r.host === from).sort((a, b) => b.at - a.at)[0]?.endpoint;
  if (!endpoint)
    return { moved: false, line: `not moved: host ${from} reports no engine address (micro-VM): left there` };
  const token = `drain:${deps.host}:${randomUUID()}`;
  if (!(await deps.store.acquire(conversation, token, MOVE_MS)))
    return { moved: false, line: 'busy now (a turn started): left here' };
  try {
    // Looked at again under the lease: a reset may have moved it (here, even) since.
    if ((await homeOf(deps, conversation)) !== from)
      return { moved: false, line: 'not moved: its home changed meanwhile: left as it is' };
    if ((await deps.store.pendingCount(conversation)) > 0)
      return { moved: false, line: 'busy now (messages wait): left here' };
    return await copyAndMove(deps, command, engineOf(endpoint), signal);
  } finally {
    await deps.store.yieldTurn(conversation, token);
  }
}

async function copyAndMove(
  deps: DrainMoverDeps,
  command: MoveCommand,
  source: Dockerode,
  signal: AbortSignal,
): Promise<MoveReply> {
  const { conversation, from, to } = command;
  const found = await stoppedSource(source, deps.instance, conversation);
  if (!found && (await hasVolumes(source, deps.instance, conversation)))
    return {
      moved: false,
      line: `not moved: it has volumes but no sandbox container on ${from}: left there`,
    };
  // Leftovers of an earlier stay here are not its files: its files are on the source.
  await deps.driver.remove(conversation, { wipe: true });
  let bytes = 0;
  if (found) {
    try {
      const target = await deps.driver.prepare(conversation);
      bytes = await copySandboxFiles(
        found,
        target,
        { maxBytes: command.maxBytes, maxMs: MOVE_MS - 30_000 },
        signal,
      );
    } catch (error) {
      await deps.driver.remove(conversation, { wipe: true }).catch(() => undefined);
      return { moved: false, line: `not moved: ${(error as Error).message}; left on ${from} with its files` };
    }
  }
  if (!(await moveHome(deps, conversation, from, to))) {
    await deps.driver.remove(conversation, { wipe: true }).catch(() => undefined);
    return { moved: false, line: 'not moved: its home changed meanwhile: left as it is' };
  }
  await deps.audit?.record({
    conversation,
    actor: command.by,
    kind: 'host.rehomed',
    data: { from, to, reason: 'drain', bytes },
  });
  deps.logger.info({ conversation, from, to, bytes }, 'conversation moved here by a drain');
  await removeConversation(source, deps.instance, conversation);
  if (found?.capped) await sendFree(deps.redis, deps.instance, from, { kind: 'free', conversation, to });
  return {
    moved: true,
    line: found ? `moved to ${to} (${bytes} bytes)` : `moved to ${to} (no sandbox: no files)`,
  };
}

/**
 * The conversation moved away: its size-capped images here (and anything else of it) are removed, unless
 * it is homed here again (a later move back made its sandbox anew, which must stay).
 */
async function freeHere(deps: DrainMoverDeps, command: FreeCommand): Promise<void> {
  const { conversation } = command;
  const token = `drain-free:${deps.host}:${randomUUID()}`;
  // Under its lease, so no turn (of a conversation moved back here meanwhile) sees it go.
  if (!(await deps.store.acquire(conversation, token, FREE_HOLD_MS))) {
    // A turn runs on its new host now: asked again a little later (while this worker runs).
    setTimeout(
      () => void sendFree(deps.redis, deps.instance, deps.host, command).catch(() => undefined),
      FREE_RETRY_MS,
    ).unref();
    return;
  }
  try {
    if ((await homeOf(deps, conversation)) === deps.host) return;
    await deps.driver.remove(conversation, { wipe: true });
    deps.logger.info({ conversation, to: command.to }, 'moved-away conversation freed');
  } finally {
    await deps.store.yieldTurn(conversation, token);
  }
}

const FREE_HOLD_MS = 120_000;
const FREE_RETRY_MS = 30_000;

const homeOf = (deps: DrainMoverDeps, conversation: ConversationId) =>
  deps.redis.hget(instanceKeys(deps.instance).homes, conversation);

async function moveHome(deps: DrainMoverDeps, conversation: string, from: string, to: string) {
  deps.redis.defineCommand('sbMoveHome', { numberOfKeys: 1, lua: MOVE_HOME });
  const run = (deps.redis as Redis & { sbMoveHome: (...a: string[]) => Promise<number> }).sbMoveHome;
  return Number(await run.call(deps.redis, instanceKeys(deps.instance).homes, conversation, from, to)) === 1;
}
