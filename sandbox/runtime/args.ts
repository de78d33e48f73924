import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';

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
  /** Listen for the egress tunnel on this loopback port (src/contracts/protocol/egress.ts); absent: no tunnel. */
  egressPort: z.coerce
    .number()
    .int()
    .min(1, '--egress-port must be a port number')
    .max(65_535, '--egress-port must be a port number')
    .optional(),
  /** Started as root: drop to this effective uid and run every process as its own uid (privilege.ts). */
  agentUid: z.coerce
    .number()
    .int()
    .min(1, '--agent-uid must be a uid other than 0')
    .max(65_534, '--agent-uid must be a uid')
    .optional(),
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
        'egress-port': { type: 'string' },
        'agent-uid': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new Error(
      `${(err as Error).message}. Usage: main.js [--workspace DIR] [--session DIR] [--max-line-bytes N] [--reap-strays] [--egress-port N] [--agent-uid N]`,
    );
  }
  const parsed = RuntimeArgs.safeParse({
    workspace: values.workspace,
    session: values.session,
    maxLineBytes: values['max-line-bytes'],
    egressPort: values['egress-port'],
    agentUid: values['agent-uid'],
    reapStrays: values['reap-strays'] === true,
  });
  if (!parsed.success) throw new Error(parsed.error.issues.map((i) => i.message).join('; '));
  return {
    ...parsed.data,
    workspace: path.resolve(parsed.data.workspace),
    session: path.resolve(parsed.data.session),
  };
}
