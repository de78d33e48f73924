/** One readiness check's answer, as `/readyz` shows it. */
export type Check = { ok: boolean; detail?: string };

/** A named probe: resolves with a detail when the dependency answers, rejects (or times out) when not. */
export type Probe = (signal: AbortSignal) => Promise<string | undefined>;

/** Runs a probe under a time limit (aborting it when late); never rejects. */
export async function runProbe(probe: Probe, timeoutMs: number): Promise<Check> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Check>((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve({ ok: false, detail: `no answer within ${timeoutMs} ms` });
    }, timeoutMs);
  });
  const checked = probe(controller.signal).then(
    (detail): Check => (detail === undefined ? { ok: true } : { ok: true, detail }),
    (error: unknown): Check => ({ ok: false, detail: describeProbeError(error) }),
  );
  try {
    return await Promise.race([checked, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** An error in one line, with its code (ECONNREFUSED …) when the message leaves it out. */
export function describeProbeError(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  const message = error instanceof Error ? error.message : String(error);
  const text = message.replace(/\s+/g, ' ').trim() || 'unknown error';
  return typeof code === 'string' && !text.includes(code) ? `${text} (${code})` : text;
}
