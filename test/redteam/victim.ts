import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { sandboxNames } from '../../sandbox/host/driver/docker-spec.js';
import { conversationKey } from '../../src/contracts/conversation/id.js';
import { conversationKeys, webKeys } from '../../src/contracts/redis/keys.js';
import { conversation, type Redteam, token, until } from './harness.js';

/**
 * Another conversation the attacks aim at: a secret in its workspace, a marker in its history. Looked
 * at from the host (its volumes' directories, its Redis keys), so "nothing changed" is checked where
 * the attacker cannot lie about it.
 */
export interface Victim {
  session: string;
  secret: string;
  historyMarker: string;
  workspaceVolume: string;
  sessionVolume: string;
  /** The volumes' directories on the host. */
  workspaceDir: string;
  sessionDir: string;
  /** Fails the test if anything of the victim's changed since it was planted (or last `accept`ed). */
  expectUnchanged(): Promise<void>;
  /** A new turn of the victim still works and still sees its own secret. */
  expectStillAnswers(): Promise<void>;
}

export async function plantVictim(rt: Redteam, session: string): Promise<Victim> {
  const secret = `VICTIM-SECRET-${token()}`;
  const historyMarker = `VICTIM-HISTORY-${token()}`;
  const done = await rt.ask(session, `echo ${secret} > /workspace/secret.txt && echo ${historyMarker}`);
  expect(done.text).toContain(historyMarker);
  const names = sandboxNames(rt.instance, conversation(session));
  // Where the engine keeps them on the host: a Docker volume's directory, or a capped volume's mount.
  const mounts = (await rt.docker.getContainer(names.container).inspect()).Mounts;
  const sourceOf = (target: string) => {
    const source = mounts.find((m) => m.Destination === target)?.Source;
    if (!source) throw new Error(`the victim has no mount at ${target}`);
    return source;
  };
  const workspaceDir = sourceOf('/workspace');
  const sessionDir = sourceOf('/session');
  await settle(rt, session, 1);
  const state = () => victimState(rt, session, [workspaceDir, sessionDir]);
  let before = await state();
  expect(JSON.stringify(before.files)).toContain('secret.txt');
  return {
    session,
    secret,
    historyMarker,
    workspaceVolume: names.workspaceVolume,
    sessionVolume: names.sessionVolume,
    workspaceDir,
    sessionDir,
    async expectUnchanged() {
      expect(await state()).toEqual(before);
    },
    async expectStillAnswers() {
      const finished = (await rt.audit(session)).filter((e) => e.kind === 'turn.finished').length;
      const again = await rt.ask(session, 'cat /workspace/secret.txt');
      expect(again.kind).toBe('reply');
      expect(again.text).toContain(secret);
      // Its own turn changed its state: what later attacks must leave alone is the state after it.
      await settle(rt, session, finished + 1);
      before = await state();
    },
  };
}

/** The worker writes the audit and ends the lease after the reply: waits for the victim's state to settle. */
async function settle(rt: Redteam, session: string, turns: number): Promise<void> {
  await until(
    async () => (await rt.audit(session)).filter((e) => e.kind === 'turn.finished').length >= turns,
    `the victim's turn ${turns} never finished in the audit`,
  );
  await until(
    async () => (await rt.redis.exists(conversationKeys(rt.instance, conversation(session)).lease)) === 0,
    'the victim’s lease was never released',
  );
}

const keyBase = (rt: Redteam, session: string, suffix: string) =>
  `${rt.instance}:conv:${conversationKey(conversation(session))}:${suffix}`;

/** The victim's files (by content) and Redis keys (by value), as the host sees them. */
async function victimState(rt: Redteam, session: string, dirs: string[]) {
  const files: Record<string, string> = {};
  for (const [index, dir] of dirs.entries()) hashTree(`${index}:`, dir, dir, files);
  const redis: Record<string, string> = {};
  const keys = [
    ...(await rt.redis.keys(keyBase(rt, session, '*'))),
    webKeys.events(rt.instance, conversation(session)),
  ];
  for (const key of keys.sort()) {
    const dump = await rt.redis.dumpBuffer(key);
    redis[key] = dump ? createHash('sha256').update(dump).digest('hex') : 'absent';
  }
  return { files, redis };
}

function hashTree(prefix: string, root: string, dir: string, out: Record<string, string>): void {
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    const rel = prefix + path.relative(root, full);
    const stat = lstatSync(full);
    if (stat.isDirectory()) {
      out[`${rel}/`] = `dir ${stat.mode.toString(8)}`;
      hashTree(prefix, root, full, out);
    } else if (stat.isSymbolicLink()) {
      out[rel] = `link ${readlinkSync(full)}`;
    } else {
      out[rel] = createHash('sha256').update(readFileSync(full)).digest('hex');
    }
  }
}
