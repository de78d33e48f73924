import type { SkillAccess, SkillToolSpec } from '../../../src/contracts/protocol/skill-tools.js';
import type { Privilege } from '../privilege.js';
import type { ReadyShells } from './ready-shell.js';

export interface ToolContext {
  /** Absolute path of the workspace: the tools' working directory and the file tools' root. */
  workspace: string;
  timeoutMs: number;
  /** Most bytes of output a tool result may carry. */
  outputBytes: number;
  /** Aborted when the turn is cancelled. */
  signal: AbortSignal;
  /** Shell for the bash tool; found on PATH when not given. */
  shell?: { file: string; args: string[] };
  /** A shell started ahead of the call (the runtime keeps one); absent: each call spawns its own. */
  shells?: ReadyShells;
  /** Tools of the turn's enabled skills. */
  skillTools?: readonly SkillToolSpec[];
  /** Where skills are mounted (tests point it elsewhere); default /skills. */
  skillsRoot?: string;
  /** The runtime started as root: every process goes through it to its own uid (privilege.ts). */
  privilege?: Privilege;
  /** The turn's skills' own proxy credentials (the i-th skill's tools run as SKILL_UID_BASE + i). */
  skillAccess?: readonly SkillAccess[];
  /** This call runs as another uid than the agent's, with this environment added, from `cwd`. */
  runAs?: { uid: number; env: Record<string, string>; cwd: string };
}

export interface ToolResult {
  ok: boolean;
  output: string;
  truncated: boolean;
}
