import type { z } from 'zod';
import { ToolArgs, ToolName } from '../../../src/contracts/protocol/tools.js';
import { capText } from '../output-cap.js';
import { runBash } from './bash.js';
import { editFileTool, listFilesTool, readFileTool, writeFileTool } from './files.js';
import { runSkillTool } from './skill-tool.js';
import type { ToolContext, ToolResult } from './types.js';

const PROGRESS_MAX_CHARS = 200;

/**
 * Runs one tool call from the model. Whatever the model asked (an unknown tool, wrong arguments, a
 * path outside the workspace), the answer is a result the model can read and act on, never a throw.
 */
export async function runTool(name: string, rawArgs: unknown, ctx: ToolContext): Promise<ToolResult> {
  const result = await dispatch(name, rawArgs, ctx);
  const capped = capText(result.output, ctx.outputBytes);
  return { ok: result.ok, output: capped.text, truncated: result.truncated || capped.truncated };
}

async function dispatch(name: string, rawArgs: unknown, ctx: ToolContext): Promise<ToolResult> {
  const known = ToolName.safeParse(name);
  const skillTool = known.success ? undefined : ctx.skillTools?.find((tool) => tool.name === name);
  if (skillTool) return runSkillTool(skillTool, rawArgs, ctx);
  if (!known.success) {
    const names = [...ToolName.options, ...(ctx.skillTools ?? []).map((tool) => tool.name)];
    return fail(`unknown tool "${name}"; the available tools are ${names.join(', ')}`);
  }
  try {
    switch (known.data) {
      case 'bash': {
        const args = parseArgs(ToolArgs.bash, name, rawArgs);
        return 'error' in args ? args.error : await runBash(args.ok.command, ctx);
      }
      case 'read_file': {
        const args = parseArgs(ToolArgs.read_file, name, rawArgs);
        return 'error' in args ? args.error : readFileTool(args.ok, ctx);
      }
      case 'write_file': {
        const args = parseArgs(ToolArgs.write_file, name, rawArgs);
        return 'error' in args ? args.error : writeFileTool(args.ok, ctx);
      }
      case 'edit_file': {
        const args = parseArgs(ToolArgs.edit_file, name, rawArgs);
        return 'error' in args ? args.error : editFileTool(args.ok, ctx);
      }
      case 'list_files': {
        const args = parseArgs(ToolArgs.list_files, name, rawArgs);
        return 'error' in args ? args.error : listFilesTool(args.ok, ctx);
      }
    }
  } catch (err) {
    // File system errors (permission denied, disk full, …) go back to the model as words.
    return fail(`${name} failed: ${(err as Error).message}`);
  }
}

function parseArgs<S extends z.ZodType>(
  schema: S,
  name: string,
  raw: unknown,
): { ok: z.infer<S> } | { error: ToolResult } {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return { ok: parsed.data };
  const problems = parsed.error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.join('.') || '(arguments)'}: ${issue.message}`)
    .join('; ');
  return {
    error: fail(`invalid arguments for ${name}: ${problems}. Call ${name} again with valid arguments.`),
  };
}

function fail(output: string): ToolResult {
  return { ok: false, output, truncated: false };
}

/** A one-line note for the user about a tool call, e.g. "running bash: ls -la". */
export function describeCall(name: string, args: unknown): string {
  const record = typeof args === 'object' && args !== null ? (args as Record<string, unknown>) : {};
  const detail = [record.command, record.path].find((v): v is string => typeof v === 'string');
  const text = (detail === undefined ? `running ${name}` : `running ${name}: ${detail}`).replace(/\s+/g, ' ');
  return text.length <= PROGRESS_MAX_CHARS ? text : `${text.slice(0, PROGRESS_MAX_CHARS - 1)}…`;
}
