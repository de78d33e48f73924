import type { Command } from 'commander';

/** Each command's work (Redis, the audit modules) loads only when that command runs. */
const actions = () => import('./audit-actions.js');

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('read and check the audit log');

  audit
    .command('tail')
    .description('print audit events as they happen, from every worker and gateway')
    .option('--conversation <id>', 'only this conversation')
    .option('--kind <kind>', 'only this kind (e.g. tool.call), or a family (e.g. "file.")')
    .option('--json', 'print each event as its JSON line')
    .action(async (options: { conversation?: string; kind?: string; json?: boolean }) =>
      (await actions()).auditTail(options),
    );

  audit
    .command('show <conversation>')
    .description("a conversation's audit log as a readable timeline")
    .action(async (value: string) => (await actions()).auditShow(value));

  audit
    .command('verify [conversation]')
    .description('check the hash chains (all conversations when none is named); exit 1 on a break')
    .action(async (value: string | undefined) => (await actions()).auditVerify(value));

  audit
    .command('export <conversation>')
    .description("a conversation's audit log as JSON lines (as stored) or CSV")
    .option('--format <format>', 'jsonl or csv', 'jsonl')
    .action(async (value: string, options: { format: string }) =>
      (await actions()).auditExport(value, options),
    );
}
