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
  request_access: z.object({
    kind: z
      .enum(['network', 'skill', 'delegate'])
      .describe('What you ask for: network access to one host, a skill, or more sub-agents than your limit.'),
    host: z
      .string()
      .max(260)
      .optional()
      .describe('kind "network": the host, e.g. "pypi.org", "*.example.com" or "api.example.com:8443".'),
    skill: z.string().max(100).optional().describe('kind "skill": the skill\'s name.'),
    count: z
      .number()
      .int()
      .optional()
      .describe('kind "delegate": how many more sub-agents than your limit (1 to 10).'),
    reason: z
      .string()
      .min(1)
      .max(1000)
      .describe('Why you need it, in one or two sentences: the person deciding reads this.'),
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
  request_access:
    'Ask a person for more than you have: network access to one host, a skill, or more sub-agents than your limit. A card with your reason is posted in this conversation; the call waits until a person approves or denies it (or it expires, as denied) and answers with the decision. Ask only when you need it, once per thing.',
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
