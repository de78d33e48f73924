import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { EGRESS_TUNNEL_ENV } from '../../src/protocol/egress.js';

const RuntimeArgs = z.object({
  workspace: z.string().min(1).default('/workspace'),
  session: z.string().min(1).default('/session'),
  maxLineBytes: z.coerce
    .number()
    .int()
    .min(1024, '--max-line-bytes must be at least 1024')
    .max(64 * 1024 * 1024, '--max-line-bytes must be at most 64 MiB')
    .default(1024 * 1024),
  reapStrays: z.boolean().default(false),
});
export type RuntimeArgs = z.infer<typeof RuntimeArgs>;

/** Parses the runtime's command line; throws an Error whose message says what to fix. */
export function parseRuntimeArgs(argv: readonly string[]): RuntimeArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        workspace: { type: 'string' },
        session: { type: 'string' },
        'max-line-bytes': { type: 'string' },
        'reap-strays': { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new Error(
      `${(err as Error).message}. Usage: main.js [--workspace DIR] [--session DIR] [--max-line-bytes N] [--reap-strays]`,
    );
  }
  const parsed = RuntimeArgs.safeParse({
    workspace: values.workspace,
    session: values.session,
    maxLineBytes: values['max-line-bytes'],
    reapStrays: values['reap-strays'] === true,
  });
  if (!parsed.success) throw new Error(parsed.error.issues.map((i) => i.message).join('; '));
  return {
    ...parsed.data,
    workspace: path.resolve(parsed.data.workspace),
    session: path.resolve(parsed.data.session),
  };
}

/** The egress tunnel's port from the environment the worker gave the sandbox; undefined: no tunnel. */
export function egressPortFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env[EGRESS_TUNNEL_ENV];
  if (raw === undefined || raw === '') return undefined;
  const port = z.coerce.number().int().min(1).max(65_535).safeParse(raw);
  if (!port.success) throw new Error(`${EGRESS_TUNNEL_ENV} must be a port number, not "${raw.slice(0, 20)}"`);
  return port.data;
}
