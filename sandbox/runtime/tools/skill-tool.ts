import { randomUUID } from 'node:crypto';
import { realpathSync } from 'node:fs';
import path from 'node:path';
import {
  inputValidator,
  SKILL_UID_BASE,
  SKILLS_ROOT,
  type SkillToolSpec,
} from '../../../src/contracts/protocol/skill-tools.js';
import { isInside } from '../paths.js';
import { runBash } from './bash.js';
import type { ToolContext, ToolResult } from './types.js';

/**
 * Runs a vetted skill's tool: the arguments are checked against the tool's declared input first, then
 * its script (read-only under /skills/<skill>/) runs like a bash command, in /workspace, with the
 * arguments as JSON on stdin, within the skill's time and memory (data segment) bounds. A skill with
 * approved hosts runs as a uid of its own, with its own proxy credential (ownIdentity).
 */
export async function runSkillTool(
  tool: SkillToolSpec,
  rawArgs: unknown,
  ctx: ToolContext,
): Promise<ToolResult> {
  const parsed = inputValidator(tool.input).safeParse(rawArgs ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues
      .slice(0, 5)
      .map((issue) => `${issue.path.join('.') || '(arguments)'}: ${issue.message}`)
      .join('; ');
    return fail(
      `invalid arguments for ${tool.name}: ${problems}. Call ${tool.name} again with valid arguments.`,
    );
  }
  const script = confineScript(tool, ctx.skillsRoot ?? SKILLS_ROOT);
  if (typeof script !== 'string') return script;
  // A quoted heredoc passes the JSON untouched; its random delimiter cannot occur in one-line JSON.
  const marker = `SANDBOT_INPUT_${randomUUID().replaceAll('-', '')}`;
  const runner = tool.interpreter ? `${tool.interpreter} ${quote(script)}` : quote(script);
  const runAs = ownIdentity(tool, ctx);
  const command = [
    // Under its own uid the workspace (the agent's, mode 0700) is closed to it: a fresh directory of its own.
    ...(runAs ? ['cd "$(mktemp -d)" || exit 70', 'export HOME="$PWD"'] : []),
    `ulimit -d ${tool.memoryMb * 1024} 2>/dev/null`,
    `exec ${runner} <<'${marker}'`,
    JSON.stringify(parsed.data),
    marker,
  ].join('\n');
  return runBash(command, {
    ...ctx,
    timeoutMs: Math.min(ctx.timeoutMs, tool.timeoutMs),
    ...(runAs ? { runAs, shells: undefined } : {}),
  });
}

/**
 * A skill with hosts of its own runs as its own uid (on a bridge, with its own credential as its
 * proxy), when the runtime can give it a uid (started as root). Otherwise it runs as the agent with
 * the sandbox's proxy: handing the credential to a process of the agent's uid would hand it to the agent.
 */
function ownIdentity(tool: SkillToolSpec, ctx: ToolContext): ToolContext['runAs'] {
  const name = tool.skill.split('@')[0];
  const index = ctx.skillAccess?.findIndex((access) => access.skill === name) ?? -1;
  const access = ctx.skillAccess?.[index];
  if (!ctx.privilege || !access) return undefined;
  // Tunnelled there is no credential: the runtime tells the tool's connections apart by their uid.
  const proxyUrl = access.proxyUrl;
  const env = proxyUrl ? Object.fromEntries(PROXY_VARIABLES.map((variable) => [variable, proxyUrl])) : {};
  return { uid: SKILL_UID_BASE + index, env, cwd: '/tmp' };
}

/** The script's real path, which must stay inside its skill's folder (no links out of it). */
function confineScript(tool: SkillToolSpec, root: string): string | ToolResult {
  const relative = tool.run.slice(SKILLS_ROOT.length + 1);
  const skillDir = path.join(root, relative.split('/')[0] ?? '');
  try {
    const real = realpathSync(path.join(root, relative));
    if (!isInside(realpathSync(skillDir), real))
      return fail(`${tool.name}: its script leads outside ${skillDir}; refused`);
    return real;
  } catch (err) {
    return fail(
      `${tool.name}: its script ${tool.run} is not there (${(err as Error).message}); the skill is not mounted in this sandbox`,
    );
  }
}

const PROXY_VARIABLES = ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'];

function quote(text: string): string {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

function fail(output: string): ToolResult {
  return { ok: false, output, truncated: false };
}
