import type { SandboxSession, WorkspaceSeed } from '../../../sandbox/host/driver/types.js';
import type { Turn } from '../../shared/queue/conversation-store.js';
import type { TurnSkills } from '../skills/turn-skills.js';
import { CANARY_PATH, canaryFileContent } from './canary.js';
import type { TurnRunnerDeps } from './turn-deps.js';

export type OpenedTurn =
  | {
      ok: true;
      session: SandboxSession;
      skills: TurnSkills | undefined;
      /** The canary token a new capped /workspace was formatted with (then planted already). */
      seededCanary?: string;
    }
  | { ok: false; error: unknown };

/**
 * The canary as a file a new capped /workspace is formatted with: no archive upload for a new
 * conversation. The token is asked only when an image is made (a warm-pool claim brings its own).
 */
function canarySeed(deps: Pick<TurnRunnerDeps, 'canaryFor'>, turn: Turn) {
  const canaryFor = deps.canaryFor;
  if (!canaryFor) return { seed: undefined, token: () => undefined };
  let token: string | undefined;
  let planted = false;
  const seed: WorkspaceSeed = {
    files: async () => {
      token = await canaryFor(turn.conversation);
      return token === '' ? [] : [{ path: CANARY_PATH, bytes: canaryFileContent(token) }];
    },
    planted: () => {
      planted = true;
    },
  };
  return { seed, token: () => (planted ? token : undefined) };
}

/**
 * Opens the conversation's sandbox for a turn, with its network grants and enabled skills (looked up
 * together: each is a Redis round trip or two), and checks from outside that what it sees under
 * /skills hashes to the approvals.
 */
export async function openTurnSandbox(
  deps: Pick<TurnRunnerDeps, 'driver' | 'skillsFor' | 'networkFor' | 'skillAccessFor' | 'canaryFor'>,
  turn: Turn,
): Promise<OpenedTurn> {
  const canary = canarySeed(deps, turn);
  try {
    const [skills, network] = await Promise.all([
      deps.skillsFor?.(turn.conversation, turn.turnId),
      deps.networkFor?.(turn.conversation),
    ]);
    // Each skill with approved hosts gets its own credential; the sandbox's own reaches only its policy.
    if (skills && network && skills.networked.length && deps.skillAccessFor)
      skills.access = deps.skillAccessFor(turn.conversation, network, skills.networked);
    const session = await deps.driver.open(turn.conversation, {
      network,
      ...(skills ? { skills: skills.mounts } : {}),
      ...(canary.seed ? { seed: canary.seed } : {}),
    });
    await skills?.verifyMounted().catch(async (error: unknown) => {
      await session.close().catch(() => undefined);
      throw error;
    });
    const seededCanary = canary.token();
    return { ok: true, session, skills, ...(seededCanary ? { seededCanary } : {}) };
  } catch (error) {
    return { ok: false, error };
  }
}
