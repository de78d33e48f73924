import type { HealthReport } from './http-server.js';

export type Check = { ok: boolean; detail?: string };

/** A named probe: resolves with a detail when the dependency answers, rejects (or times out) when not. */
export type Probe = (signal: AbortSignal) => Promise<string | undefined>;

/**
 * What `/readyz` reports: every probe at once, each under its own time limit, so one dead dependency
 * neither hangs the answer nor hides the others. Ready only when all are.
 */
export async function checkReadiness(
  probes: Record<string, Probe>,
  extra: Record<string, Check>,
  timeoutMs: number,
): Promise<HealthReport> {
  const entries = await Promise.all(
    Object.entries(probes).map(async ([name, probe]) => [name, await bounded(probe, timeoutMs)] as const),
  );
  const checks: Record<string, Check> = { ...Object.fromEntries(entries), ...extra };
  return { ok: Object.values(checks).every((c) => c.ok), checks };
}

async function bounded(probe: Probe, timeoutMs: number): Promise<Check> {
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
    (error: unknown): Check => ({ ok: false, detail: describe(error) }),
  );
  try {
    return await Promise.race([checked, late]);
  } finally {
    clearTimeout(timer);
  }
}

function describe(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  const message = error instanceof Error ? error.message : String(error);
  const text = message.replace(/\s+/g, ' ').trim() || 'unknown error';
  return typeof code === 'string' && !text.includes(code) ? `${text} (${code})` : text;
}
