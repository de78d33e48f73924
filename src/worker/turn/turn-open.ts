import type { SandboxSession } from '../../../sandbox/host/driver/types.js';
import type { Turn } from '../../shared/queue/conversation-store.js';
import type { TurnSkills } from '../skills/turn-skills.js';
import type { TurnRunnerDeps } from './turn-deps.js';

export type OpenedTurn =
  | { ok: true; session: SandboxSession; skills: TurnSkills | undefined }
  | { ok: false; error: unknown };

/**
 * Opens the conversation's sandbox for a turn, with its network grants and enabled skills (looked up
 * together: each is a Redis round trip or two), and checks from outside that what it sees under
 * /skills hashes to the approvals.
 */
export async function openTurnSandbox(
  deps: Pick<TurnRunnerDeps, 'driver' | 'skillsFor' | 'networkFor' | 'skillAccessFor'>,
  turn: Turn,
): Promise<OpenedTurn> {
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
    });
    await skills?.verifyMounted().catch(async (error: unknown) => {
      await session.close().catch(() => undefined);
      throw error;
    });
    return { ok: true, session, skills };
  } catch (error) {
    return { ok: false, error };
  }
}
