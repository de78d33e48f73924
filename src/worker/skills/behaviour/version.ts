import { createHash } from 'node:crypto';
import { LAUNCHER, RECORDER, TRACED_SYSCALLS } from './scripts.js';

/**
 * Which behavioural run a report came from: the recorder, the launcher and the traced calls are
 * hashed; the reading of what they saw (canaries.ts, observe.ts, trace.ts) carries a revision, raised
 * whenever it changes what is found (test/unit/skill-behaviour.test.ts fails until it is raised). A
 * skill run by another version is run again before it is shown, listed or approved.
 */
export const BEHAVIOUR_REVISION = 1;

const digest = createHash('sha256')
  .update(JSON.stringify([RECORDER, LAUNCHER, TRACED_SYSCALLS]))
  .digest('hex')
  .slice(0, 12);

export const BEHAVIOUR_VERSION = `b${BEHAVIOUR_REVISION}-${digest}`;
