import { z } from 'zod';
import { EgressAck, EgressClose, EgressData, EgressEnd, EgressOpen } from './egress.js';
import { MAX_SKILL_ACCESS, SkillAccess, SkillToolSpec } from './skill-tools.js';

/**
 * The JSON-lines protocol between the worker and the agent runtime inside a sandbox, one JSON object
 * per line over the container's stdin/stdout. Both sides parse every line with these schemas.
 * The worker treats everything the runtime says as untrusted: what the user reads comes from the model
 * responses the worker brokered itself, never from a runtime `reply`.
 */

export const ToolCall = z.object({
  function: z.object({ name: z.string().max(128), arguments: z.record(z.string(), z.unknown()) }),
});
export type ToolCall = z.infer<typeof ToolCall>;

export const ChatMessage = z.object({
  role: z.enum(['system', 'user', 'assistant', 'tool']),
  content: z.string(),
  tool_calls: z.array(ToolCall).optional(),
  tool_name: z.string().max(128).optional(),
});
export type ChatMessage = z.infer<typeof ChatMessage>;

const turnId = z.string().min(1).max(300);

// worker → runtime
export const TurnStart = z.object({
  type: z.literal('turn'),
  turnId,
  messages: z.array(z.object({ user: z.string().max(256), text: z.string() })).min(1),
  limits: z.object({
    toolTimeoutMs: z.number().int().positive(),
    toolOutputBytes: z.number().int().positive(),
  }),
  /** Tools of the conversation's enabled skills (scripts under /skills), besides the built-in ones. */
  tools: z.array(SkillToolSpec).max(64).optional(),
  /** Per skill with approved hosts: its own proxy credential, for its tool processes only. */
  skillAccess: z.array(SkillAccess).max(MAX_SKILL_ACCESS).optional(),
});
/** Runs one shell command without the model (a chat `/run`): answered with tool_started/finished and turn_done. */
export const RunCommand = z.object({
  type: z.literal('run'),
  turnId,
  command: z.string().min(1).max(20_000),
  limits: TurnStart.shape.limits,
});
export const ModelResponse = z.object({
  type: z.literal('model_response'),
  turnId,
  requestId: z.string().max(64),
  message: ChatMessage,
});
export const ModelError = z.object({
  type: z.literal('model_error'),
  turnId,
  requestId: z.string().max(64),
  message: z.string(),
});
export const Cancel = z.object({ type: z.literal('cancel'), turnId });
/**
 * Asks the runtime to answer `ready`: a liveness check after (re)attaching. `frameKey` is the key the
 * runtime marks the parts of its long lines with from then on (protocol/frames.ts).
 */
export const Hello = z.object({
  type: z.literal('hello'),
  frameKey: z
    .string()
    .regex(/^[0-9a-f]{32}$/)
    .optional(),
});
/** The result of a host tool (see HostToolRequest), as the model reads it. */
export const HostToolResult = z.object({
  type: z.literal('host_tool_result'),
  turnId,
  requestId: z.string().min(1).max(64),
  ok: z.boolean(),
  output: z.string(),
});

export const WorkerToRuntime = z.discriminatedUnion('type', [
  TurnStart,
  RunCommand,
  ModelResponse,
  ModelError,
  Cancel,
  Hello,
  HostToolResult,
  EgressData,
  EgressAck,
  EgressEnd,
  EgressClose,
]);
export type WorkerToRuntime = z.infer<typeof WorkerToRuntime>;

// runtime → worker
export const Ready = z.object({ type: z.literal('ready'), version: z.string().max(64) });
export const ModelRequest = z.object({
  type: z.literal('model_request'),
  turnId,
  requestId: z.string().min(1).max(64),
  messages: z.array(ChatMessage).max(2000),
});
export const ToolStarted = z.object({
  type: z.literal('tool_started'),
  turnId,
  callId: z.string().max(64),
  name: z.string().max(128),
  args: z.record(z.string(), z.unknown()),
});
export const ToolFinished = z.object({
  type: z.literal('tool_finished'),
  turnId,
  callId: z.string().max(64),
  name: z.string().max(128),
  ok: z.boolean(),
  output: z.string(),
  truncated: z.boolean(),
});
export const Progress = z.object({ type: z.literal('progress'), turnId, text: z.string().max(2000) });
export const Reply = z.object({ type: z.literal('reply'), turnId, text: z.string() });
export const TurnDone = z.object({ type: z.literal('turn_done'), turnId });
export const RuntimeError = z.object({
  type: z.literal('error'),
  turnId: turnId.optional(),
  message: z.string().max(4000),
});

/**
 * A tool call the worker carries out rather than the sandbox (src/contracts/protocol/host-tools.ts, e.g.
 * `delegate`). The worker acts on it only when the model it brokered made exactly this call.
 */
export const HostToolRequest = z.object({
  type: z.literal('host_tool_request'),
  turnId,
  requestId: z.string().min(1).max(64),
  name: z.string().max(128),
  args: z.record(z.string(), z.unknown()),
});

export const RuntimeToWorker = z.discriminatedUnion('type', [
  Ready,
  ModelRequest,
  ToolStarted,
  ToolFinished,
  Progress,
  Reply,
  TurnDone,
  RuntimeError,
  HostToolRequest,
  EgressOpen,
  EgressData,
  EgressAck,
  EgressEnd,
  EgressClose,
]);
export type RuntimeToWorker = z.infer<typeof RuntimeToWorker>;
