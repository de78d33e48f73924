import { posix } from 'node:path';
import { DEFAULT_GRANT_PORTS, Grant } from '../../contracts/policy/network-policy.js';

/**
 * The rules of delegation, pure: which files may be handed over, which network a sub-agent may have
 * (never more than its parent), and when a delegation is refused. src/worker/delegation/delegation.ts carries
 * them out.
 */

export interface DelegationLimits {
  maxDepth: number;
  maxFanout: number;
  /** Sub-agent sandboxes a whole task tree may use. */
  maxSandboxes: number;
  /** The worker's concurrent turns (a waiting parent holds one). */
  concurrency: number;
  /** Running sandboxes the worker keeps at most. */
  maxLive: number;
}

export interface DelegationState {
  /** Depth of the delegating agent (0: a task a person started). */
  depth: number;
  /** Sub-agents this agent has started so far. */
  children: number;
  /** Sub-agent sandboxes its task tree has used so far. */
  treeSandboxes: number;
  /** Turns on this worker that wait for sub-agents now, and whether this parent is one of them. */
  waitingParents: number;
  parentWaiting: boolean;
}

/** Why a delegation may not start, in words for the model (naming the setting); undefined: it may. */
export function refusal(state: DelegationState, limits: DelegationLimits): string | undefined {
  if (state.depth + 1 > limits.maxDepth) {
    return limits.maxDepth === 0
      ? 'delegation is turned off here (SANDBOT_DELEGATE_MAX_DEPTH=0); do the work yourself'
      : `sub-agents may nest ${limits.maxDepth} deep at most (SANDBOT_DELEGATE_MAX_DEPTH), and you are at that depth; do the work yourself`;
  }
  if (state.children >= limits.maxFanout) {
    return `you have started ${state.children} sub-agents, the most one agent may (SANDBOT_DELEGATE_MAX_FANOUT); do the rest yourself`;
  }
  if (state.treeSandboxes >= limits.maxSandboxes) {
    return `this task has used its ${limits.maxSandboxes} sub-agent sandboxes (SANDBOT_DELEGATE_MAX_SANDBOXES); do the rest yourself`;
  }
  // A turn waiting for sub-agents holds a worker slot; one slot always stays free so sub-agents can run.
  const waitingAfter = state.waitingParents + (state.parentWaiting ? 0 : 1);
  if (waitingAfter >= limits.concurrency || waitingAfter >= limits.maxLive) {
    return `no worker slot could run a sub-agent now (${state.waitingParents} agents already wait for theirs; SANDBOT_WORKER_CONCURRENCY is ${limits.concurrency}); do the work yourself or try later`;
  }
  return undefined;
}

/** A path within /workspace, relative (`/workspace/a/b.txt` → `a/b.txt`); an error for anything else. */
export function workspacePath(raw: string): { path: string } | { error: string } {
  const text = raw.trim();
  const relative = text.startsWith('/workspace/') ? text.slice('/workspace/'.length) : text;
  if (relative.startsWith('/')) return { error: `${raw}: only files in /workspace can be handed over` };
  if (relative.split('/').includes('..')) return { error: `${raw}: ".." is not allowed in a path` };
  const path = posix.normalize(relative).replace(/^\.\//, '');
  if (path === '' || path === '.' || path.endsWith('/'))
    return { error: `${raw}: name a file, not a directory` };
  if (!/^[^\0\n]{1,1024}$/.test(path)) return { error: `${raw}: not a usable file name` };
  return { path };
}

/** The files a delegation hands over, as workspace paths: refused when one is not, or two share a name. */
export function handedOverPaths(files: readonly string[]): { paths: string[] } | { error: string } {
  const paths: string[] = [];
  for (const raw of files) {
    const checked = workspacePath(raw);
    if ('error' in checked) return checked;
    paths.push(checked.path);
  }
  const names = paths.map((p) => p.split('/').at(-1) ?? p);
  if (new Set(names).size < names.length) return { error: 'two of the files have the same name' };
  return { paths };
}

/**
 * A sub-agent's network: its parent's grants, or the ones asked for when each is covered by a parent
 * grant. Asking for anything the parent lacks refuses the delegation rather than quietly dropping it.
 */
export function narrowGrants(
  parent: readonly string[],
  requested: readonly string[] | undefined,
): { grants: string[] } | { error: string } {
  if (requested === undefined) return { grants: [...parent] };
  const grants: string[] = [];
  const outside: string[] = [];
  for (const raw of requested) {
    const parsed = Grant.safeParse(raw);
    if (!parsed.success)
      return { error: `"${raw}" is not a host name ("host", "*.suffix", optional ":port")` };
    if (parent.some((p) => covers(p, parsed.data))) grants.push(parsed.data);
    else outside.push(parsed.data);
  }
  if (outside.length > 0) {
    const have = parent.length ? parent.join(', ') : 'no network';
    return {
      error: `a sub-agent cannot reach more than you: you have ${have}, not ${outside.join(', ')}`,
    };
  }
  return { grants: [...new Set(grants)] };
}

/** Does grant `outer` allow everything grant `inner` allows? */
export function covers(outer: string, inner: string): boolean {
  const [outerHost = '', outerPort] = outer.split(':');
  const [innerHost = '', innerPort] = inner.split(':');
  if (outerPort !== undefined && outerPort !== innerPort) return false;
  // A grant without a port allows 80 and 443 only: it does not cover "host:25".
  if (outerPort === undefined && innerPort !== undefined && !DEFAULT_GRANT_PORTS.includes(Number(innerPort)))
    return false;
  if (outerHost === innerHost) return true;
  if (!outerHost.startsWith('*.')) return false;
  const suffix = outerHost.slice(1); // ".example.com"
  const name = innerHost.startsWith('*.') ? innerHost.slice(1) : innerHost;
  return name.endsWith(suffix) && name.length > suffix.length;
}

/** What the sub-agent reads as its task. */
export function subAgentBrief(label: string, task: string, files: readonly string[]): string {
  const handed = files.length
    ? `Files handed to you are in /workspace/inbox: ${files.join(', ')}.`
    : 'No files were handed to you.';
  return [
    `You are sub-agent ${label}: another agent handed you this task.`,
    handed,
    'Put files the other agent should get in /workspace/outbox. Answer with your result.',
    '',
    task,
  ].join('\n');
}
