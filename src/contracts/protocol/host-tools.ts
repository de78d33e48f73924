import { z } from 'zod';

/**
 * Tools the worker carries out itself, outside any sandbox: the runtime relays such a call as a
 * `host_tool_request` and feeds the model the `host_tool_result`. They are offered to the model only
 * where the worker allows them (e.g. `delegate` within the depth limit).
 */
export const HostToolArgs = {
  delegate: z.object({
    task: z
      .string()
      .min(1)
      .max(8000)
      .describe('What the sub-agent must do: a complete instruction, as it knows nothing else of this chat.'),
    files: z
      .array(z.string().min(1).max(1024))
      .max(20)
      .default([])
      .describe('Files of your /workspace to copy to the sub-agent; it finds them in its /workspace/inbox.'),
    network: z
      .array(z.string().min(1).max(260))
      .max(50)
      .optional()
      .describe(
        'Hosts the sub-agent may reach: some of those you may reach (default: all of yours, never more).',
      ),
  }),
} as const;

export type HostToolName = keyof typeof HostToolArgs;
export const HOST_TOOL_NAMES = Object.keys(HostToolArgs) as HostToolName[];

export function isHostTool(name: string): name is HostToolName {
  return (HOST_TOOL_NAMES as string[]).includes(name);
}

export const HOST_TOOL_DESCRIPTIONS: Record<HostToolName, string> = {
  delegate:
    'Hand a sub-task to a sub-agent that works in a sandbox of its own and answers with its result. Call it several times in one answer to run sub-agents in parallel. Files it leaves in its /workspace/outbox are copied to your /workspace/subagents/<name>/.',
};

/** A host tool as Ollama's /api/chat expects it. */
export function hostToolDefinition(name: HostToolName) {
  return {
    type: 'function' as const,
    function: {
      name,
      description: HOST_TOOL_DESCRIPTIONS[name],
      parameters: z.toJSONSchema(HostToolArgs[name], { io: 'input' }) as Record<string, unknown>,
    },
  };
}
