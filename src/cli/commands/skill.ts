import { userInfo } from 'node:os';
import type { Command } from 'commander';
import type { SkillRecord } from '../../worker/skills/store.js';
import type { Registry } from '../../worker/skills/vetting.js';
import { loadConfigOrExit } from '../run-service.js';

/** The skills modules (store, ledger, scanner, reports) load only when a skill command runs. */
async function skills() {
  const [
    { openSkillStore, closeSkillStores },
    { parseSkillRef },
    { formatList, formatReport },
    vetting,
    { rescanIfStale },
    { behaviourRunnerFromConfig },
  ] = await Promise.all([
    import('../../worker/skills/open-store.js'),
    import('../../worker/skills/manifest.js'),
    import('../../worker/skills/report.js'),
    import('../../worker/skills/vetting.js'),
    import('../../worker/skills/rescan.js'),
    import('../../worker/skills/behaviour/from-config.js'),
  ]);
  const { addSkill, approveSkill, removeSkill, scanSkill } = vetting;
  return {
    behaviourRunnerFromConfig,
    scanSkill,
    openSkillStore,
    closeSkillStores,
    parseSkillRef,
    formatList,
    formatReport,
    addSkill,
    approveSkill,
    removeSkill,
    rescanIfStale,
  };
}

/**
 * The skills store (the folder, or PostgreSQL with SANDBOT_DATABASE_URL) with its ledger, and the
 * behavioural run on the engine at DOCKER_HOST under the worker's layer.
 */
async function registry(): Promise<Required<Registry>> {
  const config = loadConfigOrExit();
  const { openSkillStore, behaviourRunnerFromConfig } = await skills();
  const store = openSkillStore(config);
  return { store, ledger: store.ledger, behaviour: behaviourRunnerFromConfig(config) };
}

type Vetted = Pick<SkillRecord, 'findings' | 'behaviour'>;
const anyCritical = (r: Vetted) =>
  r.findings.some((f) => f.severity === 'critical') ||
  (r.behaviour?.findings ?? []).some((f) => f.severity === 'critical');

/** A behavioural run that did not happen is said on stderr too: the skill stays pending. */
function warnNotRun(record: Vetted): void {
  if (record.behaviour?.status === 'not-run') {
    console.error(
      `sandbot: the behavioural run did not happen: ${record.behaviour.reason}; the skill stays pending (run \`sandbot skill scan NAME@VERSION\` where the engine is reachable)`,
    );
  }
}

/** Runs a command; an error is one line on stderr and exit code 1. The database's pool ends after. */
async function run(work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (error) {
    console.error(`sandbot: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  } finally {
    await (await skills()).closeSkillStores();
  }
}

const byOption = ['--by <name>', 'who does it (recorded in the skills ledger)', userInfo().username] as const;

export function registerSkillCommands(program: Command): void {
  const skill = program
    .command('skill')
    .description('vet, approve and list skills (packaged instructions and tools)');
  registerAdd(skill);
  registerScan(skill);
  registerApprove(skill);
  registerList(skill);
  registerShow(skill);
  registerRemove(skill);
  registerLog(skill);
}

/** `skill add`: hash, scan and stage a skill. */
function registerAdd(skill: Command): void {
  skill
    .command('add <path>')
    .description(
      'hash and scan a skill folder or .tar.gz, run its tools in a throwaway sandbox, print both reports, and stage it as pending',
    )
    .option(...byOption)
    .action((source: string, options: { by: string }) =>
      run(async () => {
        const { addSkill, formatReport } = await skills();
        console.error('scanning, then running each tool once in a throwaway sandbox…');
        const { record, note } = await addSkill(await registry(), source, options.by);
        console.log(formatReport(record, note ? { note } : {}));
        warnNotRun(record);
        // Staged either way (for the record); critical findings fail the command so scripts notice.
        if (anyCritical(record)) process.exitCode = 1;
      }),
    );
}

/** `skill scan`: both scans again, now. */
function registerScan(skill: Command): void {
  skill
    .command('scan <name@version>')
    .description("scan a staged skill's files again and run its tools again in a throwaway sandbox")
    .option(...byOption)
    .action((ref: string, options: { by: string }) =>
      run(async () => {
        const { scanSkill, formatReport } = await skills();
        const reg = await registry();
        const record = await scanSkill(reg, ref, options.by);
        console.log(formatReport(record, { verification: await reg.store.verify(record) }));
        warnNotRun(record);
        if (anyCritical(record)) process.exitCode = 1;
      }),
    );
}

/** `skill approve`: pin a scanned skill by its hash, with the hosts it may reach. */
function registerApprove(skill: Command): void {
  skill
    .command('approve <name@version>')
    .description('pin a scanned skill by its content hash so it may be enabled (admin)')
    .option(...byOption)
    .option('--hosts <hosts>', 'declared hosts to grant while it is enabled, comma-separated', '')
    .option('--all-hosts', 'grant every host the skill declares')
    .option('--accept-findings', 'approve despite critical scan findings (after reading them)')
    .action(
      (ref: string, options: { by: string; hosts: string; allHosts?: boolean; acceptFindings?: boolean }) =>
        run(async () => {
          const hosts = options.allHosts
            ? 'all'
            : options.hosts
                .split(',')
                .map((h) => h.trim())
                .filter(Boolean);
          const { approveSkill, formatReport, parseSkillRef } = await skills();
          const reg = await registry();
          let record: SkillRecord;
          try {
            record = await approveSkill(reg, ref, {
              by: options.by,
              hosts,
              acceptFindings: options.acceptFindings === true,
            });
          } catch (error) {
            // The approval screen shows both reports, refused or not.
            const asked = parseSkillRef(ref);
            const seen = asked?.version
              ? await reg.store.get(asked.name, asked.version).catch(() => undefined)
              : undefined;
            if (seen) console.log(formatReport(seen));
            throw error;
          }
          const a = record.approval;
          console.log(
            `approved ${ref} (sha256 ${record.hash}) by ${a?.by}; hosts granted while enabled: ${a?.hosts.join(', ') || 'none'}`,
          );
          const left = record.manifest.permissions.hosts.filter((h) => !a?.hosts.includes(h));
          if (left.length) console.log(`declared but not granted: ${left.join(', ')} (they stay blocked)`);
          console.log(formatReport(record));
        }),
    );
}

/** `skill ls`: every skill and its status. */
function registerList(skill: Command): void {
  skill
    .command('ls')
    .description('list skills with their status (pending, approved, or refused because their files changed)')
    .action(() =>
      run(async () => {
        const { formatList, rescanIfStale } = await skills();
        const rows = [];
        const { store, behaviour } = await registry();
        for (const listed of await store.list()) {
          const record = await rescanIfStale(store, listed, behaviour);
          rows.push({ record, ...(record.approval ? { verification: await store.verify(record) } : {}) });
        }
        console.log(formatList(rows));
      }),
    );
}

/** `skill show`: a skill's vetting reports. */
function registerShow(skill: Command): void {
  skill
    .command('show <name[@version]>')
    .description("a skill's vetting report: files, hash, tools, hosts, findings, approval")
    .action((text: string) =>
      run(async () => {
        const { parseSkillRef, formatReport, rescanIfStale } = await skills();
        const ref = parseSkillRef(text);
        if (!ref) throw new Error(`"${text}" is not a skill name (e.g. weather or weather@1.0.0)`);
        const { store, behaviour } = await registry();
        const records = ref.version ? [await store.get(ref.name, ref.version)] : await store.list(ref.name);
        const found = records.filter((r) => r !== undefined);
        if (found.length === 0) throw new Error(`no skill ${text}`);
        const reports = [];
        for (const stored of found) {
          const record = await rescanIfStale(store, stored, behaviour);
          reports.push(formatReport(record, { verification: await store.verify(record) }));
        }
        console.log(reports.join('\n\n'));
      }),
    );
}

/** `skill remove`: delete a skill version. */
function registerRemove(skill: Command): void {
  skill
    .command('remove <name@version>')
    .description('delete a skill version (conversations that enable it stop loading it)')
    .option(...byOption)
    .action((ref: string, options: { by: string }) =>
      run(async () => {
        const { removeSkill } = await skills();
        await removeSkill(await registry(), ref, options.by);
        console.log(`removed ${ref}`);
      }),
    );
}

/** `skill log`: print or verify the skills ledger. */
function registerLog(skill: Command): void {
  skill
    .command('log')
    .description('the skills ledger: every add, scan, approval, refusal and removal')
    .option('--verify', 'check the ledger’s hash chain; exit 1 when it is broken')
    .action((options: { verify?: boolean }) =>
      run(async () => {
        const { ledger } = await registry();
        if (options.verify) {
          const result = await ledger.verify();
          if (result.broken)
            throw new Error(`the skills ledger is broken after ${result.entries} entries: ${result.broken}`);
          console.log(`the skills ledger is intact (${result.entries} entries)`);
          return;
        }
        for (const e of await ledger.read()) {
          console.log(
            `${e.time}  #${e.seq}  ${e.action.padEnd(8)} ${e.skill}  ${e.actor}  ${JSON.stringify(e.data)}`,
          );
        }
      }),
    );
}
