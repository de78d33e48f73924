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
}

export interface ToolResult {
  ok: boolean;
  output: string;
  truncated: boolean;
}
