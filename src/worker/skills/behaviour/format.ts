import type { BehaviourFinding, BehaviourReport, ToolBehaviour } from './report.js';

/** The behaviour report in words, for `sandbot skill add|scan|show|approve`: pure. */

const SEVERITY = { critical: 'CRITICAL', warning: 'warning ', info: 'listed  ' } as const;

export function formatBehaviourFinding(f: BehaviourFinding): string {
  return `  ${SEVERITY[f.severity]} ${f.rule.padEnd(16)} ${f.tool ? `${f.tool}: ` : ''}${f.message}`;
}

export function formatBehaviour(report: BehaviourReport | undefined): string[] {
  if (!report) return ['  behaviour: not run (this record predates behavioural runs)'];
  if (report.status === 'not-run') {
    return [
      `  behaviour: NOT RUN (${report.version}): ${report.reason ?? 'unknown reason'}`,
      ...report.findings.map(formatBehaviourFinding),
    ];
  }
  const critical = report.findings.filter((f) => f.severity === 'critical').length;
  const warnings = report.findings.filter((f) => f.severity === 'warning').length;
  const seconds = ((report.ms ?? 0) / 1000).toFixed(1);
  return [
    `  behaviour: ${critical} critical, ${warnings} warning${warnings === 1 ? '' : 's'} — ${report.tools.length} tool(s) run under ${report.layer ?? '?'} in ${seconds} s, no grants, canaries planted (${report.version})`,
    ...report.tools.flatMap(formatTool),
    ...report.findings.map(formatBehaviourFinding),
  ];
}

function formatTool(t: ToolBehaviour): string[] {
  const list = (items: readonly string[]) => (items.length ? items.join('; ') : 'none');
  const end = t.timedOut
    ? 'killed at its time limit'
    : t.overMemory
      ? 'killed past its memory limit'
      : `exit ${t.exitCode ?? '?'}`;
  const hosts = t.hosts.map(
    (h) => `${h.host}${h.port ? `:${h.port}` : ''} (${h.via}, ${h.declared ? 'declared' : 'UNDECLARED'})`,
  );
  return [
    `    tool ${t.tool} ${t.args}: ${end} after ${t.ms} ms, ${Math.round(t.maxRssKb / 1024)} MiB at most`,
    `      processes: ${list(t.processes)}`,
    `      files written outside /workspace and /tmp: ${list(t.filesWritten)}`,
    `      sockets: ${list(t.sockets)}`,
    `      hosts tried: ${list(hosts)}`,
    `      canaries: ${list(t.canaries.map((c) => `${c.canary} (${c.how})`))}`,
  ];
}
