import { z } from 'zod';

/**
 * What the behavioural run saw a skill's tools do, kept in the skill's record next to the static
 * findings. `not-run`: the run could not happen (no engine, no strace …): the reason says why, and the
 * skill cannot be approved without --accept-findings.
 */

export const BEHAVIOUR_RULES = [
  'undeclared-host',
  'declared-host',
  'metadata',
  'unix-socket',
  'canary',
  'local-port',
  'write-outside',
  'untraced',
  'timeout',
  'memory',
  'not-run',
] as const;
export type BehaviourRule = (typeof BEHAVIOUR_RULES)[number];

export const BehaviourFinding = z.object({
  rule: z.enum(BEHAVIOUR_RULES),
  severity: z.enum(['critical', 'warning', 'info']),
  /** The tool that did it (absent: the run as a whole). */
  tool: z.string().optional(),
  message: z.string(),
});
export type BehaviourFinding = z.infer<typeof BehaviourFinding>;

export const HostTried = z.object({
  host: z.string(),
  port: z.number().int().optional(),
  /** How it was seen: a DNS query, the recording proxy, or a direct connect to an address. */
  via: z.enum(['dns', 'proxy', 'connect']),
  declared: z.boolean(),
});
export type HostTried = z.infer<typeof HostTried>;

export const ToolBehaviour = z.object({
  tool: z.string(),
  /** The arguments it was given (JSON). */
  args: z.string(),
  exitCode: z.number().int().nullable(),
  timedOut: z.boolean(),
  /** Killed for going past its memory limit. */
  overMemory: z.boolean().default(false),
  ms: z.number().int().nonnegative(),
  /** Peak resident memory of its largest process, KiB. */
  maxRssKb: z.number().int().nonnegative(),
  processes: z.array(z.string()),
  filesWritten: z.array(z.string()),
  sockets: z.array(z.string()),
  hosts: z.array(HostTried),
  canaries: z.array(z.object({ canary: z.string(), how: z.string() })),
  /** The start of what it printed (canary values masked). */
  output: z.string(),
});
export type ToolBehaviour = z.infer<typeof ToolBehaviour>;

export const BehaviourReport = z.object({
  version: z.string(),
  status: z.enum(['ran', 'not-run']),
  reason: z.string().optional(),
  /** The isolation layer it ran under (gvisor, container). */
  layer: z.string().optional(),
  at: z.iso.datetime(),
  ms: z.number().int().nonnegative().optional(),
  tools: z.array(ToolBehaviour),
  findings: z.array(BehaviourFinding),
});
export type BehaviourReport = z.infer<typeof BehaviourReport>;

export const behaviourCritical = (report: BehaviourReport | undefined): BehaviourFinding[] =>
  (report?.findings ?? []).filter((f) => f.severity === 'critical');

/** A report of a run that could not happen: a critical finding of its own, so approval needs the override. */
export function notRun(version: string, reason: string): BehaviourReport {
  return {
    version,
    status: 'not-run',
    reason,
    at: new Date().toISOString(),
    tools: [],
    findings: [
      {
        rule: 'not-run',
        severity: 'critical',
        message: `the behavioural run did not happen: ${reason}`,
      },
    ],
  };
}
