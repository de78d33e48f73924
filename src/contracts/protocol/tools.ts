import { z } from 'zod';

/**
 * The tools the agent may call. The worker offers exactly these to the model (as JSON Schema built
 * from these zod schemas); the runtime validates the model's arguments with the same schemas.
 * Paths are relative to /workspace (or absolute inside it); the runtime refuses anything outside.
 */
export const ToolArgs = {
  bash: z.object({
    command: z.string().min(1).max(20_000).describe('The shell command to run with bash, in /workspace.'),
  }),
  read_file: z.object({ path: z.string().min(1).max(1024).describe('File path within /workspace.') }),
  write_file: z.object({
    path: z.string().min(1).max(1024).describe('File path within /workspace.'),
    content: z.string().max(1_000_000).describe('The whole new content of the file.'),
  }),
  edit_file: z.object({
    path: z.string().min(1).max(1024).describe('File path within /workspace.'),
    old_text: z.string().min(1).describe('Exact text to replace; must occur exactly once.'),
    new_text: z.string().describe('Replacement text.'),
  }),
  list_files: z.object({
    path: z.string().max(1024).default('.').describe('Directory within /workspace.'),
  }),
} as const;

export type ToolName = keyof typeof ToolArgs;
export const ToolName = z.enum(Object.keys(ToolArgs) as [ToolName, ...ToolName[]]);

export const TOOL_DESCRIPTIONS: Record<ToolName, string> = {
  bash: 'Run a shell command in your sandbox (working directory /workspace). Returns exit code and output.',
  read_file: 'Read a text file from /workspace.',
  write_file: 'Create or overwrite a file in /workspace.',
  edit_file: 'Replace one exact occurrence of text in a file in /workspace.',
  list_files: 'List the files in a directory of /workspace.',
};

/** Tool definitions in the shape Ollama's /api/chat expects. */
export function toolDefinitions() {
  return (Object.keys(ToolArgs) as ToolName[]).map((name) => ({
    type: 'function' as const,
    function: {
      name,
      description: TOOL_DESCRIPTIONS[name],
      parameters: z.toJSONSchema(ToolArgs[name], { io: 'input' }) as Record<string, unknown>,
    },
  }));
}
