import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Finding } from '../../src/worker/skills/finding.js';
import type { SkillFile } from '../../src/worker/skills/hashing.js';
import { parseManifest } from '../../src/worker/skills/manifest.js';
import { scanSkillFiles } from '../../src/worker/skills/scanner.js';
import { addSkill, approveSkill } from '../../src/worker/skills/vetting.js';
import { BENIGN, CAUGHT_BY, MALICIOUS } from '../fixtures/skill-corpus.js';
import type { SkillFiles } from '../helpers/skill-fixtures.js';
import { writeSkill } from '../helpers/skill-fixtures.js';
import { registryOf } from '../helpers/skill-stack.js';

/** The static scan over the corpus: every trick caught as critical, every ordinary skill clean. */

async function scan(files: SkillFiles): Promise<Finding[]> {
  const parsed = parseManifest(new Map(Object.entries(files)));
  if (!parsed.ok) throw new Error(parsed.error);
  const list: SkillFile[] = Object.entries(files).map(([path, text]) => ({ path, bytes: Buffer.from(text) }));
  return scanSkillFiles(parsed.manifest, list);
}

const critical = (findings: Finding[]) => findings.filter((f) => f.severity === 'critical');
const dir = await mkdtemp(join(tmpdir(), 'sandbot-corpus-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('the malicious-skill corpus', () => {
  it('holds at least 20 malicious skills and 5 benign ones', () => {
    expect(Object.keys(MALICIOUS).length).toBeGreaterThanOrEqual(20);
    expect(Object.keys(BENIGN).length).toBeGreaterThanOrEqual(5);
  });

  it.each(Object.entries(MALICIOUS))('%s gets a critical finding for its trick', async (name, files) => {
    const found = critical(await scan(files));
    // Caught by the rule for its trick, on a line of the tool file, so the approver sees what and where.
    const rule = CAUGHT_BY[name];
    expect(rule).toBeDefined();
    expect(
      found.filter((f) => f.rule === rule && f.file.startsWith('tools/') && typeof f.line === 'number'),
      JSON.stringify(found, null, 1),
    ).not.toEqual([]);
  });

  it.each(Object.entries(BENIGN))('%s passes clean', async (_name, files) => {
    expect(await scan(files)).toEqual([]);
  });
});

describe('approval over the corpus', () => {
  const registry = registryOf({ SANDBOT_SKILLS_DIR: dir });

  it.each(Object.keys(MALICIOUS))('%s cannot be approved without --accept-findings', async (name) => {
    const files = MALICIOUS[name] as SkillFiles;
    await addSkill(registry, await writeSkill(files), 'ann');
    await expect(
      approveSkill(registry, `${name}@1.0.0`, { by: 'ann', hosts: 'all', acceptFindings: false }),
    ).rejects.toThrow(/critical finding.*--accept-findings/);
    const accepted = await approveSkill(registry, `${name}@1.0.0`, {
      by: 'ann',
      hosts: 'all',
      acceptFindings: true,
    });
    expect(accepted.approval?.acceptedFindings).toBeGreaterThan(0);
  });

  it.each(Object.keys(BENIGN))('%s is approved without an override', async (name) => {
    await addSkill(registry, await writeSkill(BENIGN[name] as SkillFiles), 'ann');
    const approved = await approveSkill(registry, `${name}@1.0.0`, {
      by: 'ann',
      hosts: 'all',
      acceptFindings: false,
    });
    expect(approved.status).toBe('approved');
  });
});

describe('the parsed readers tell near misses apart', () => {
  const rulesOf = async (path: string, text: string) => {
    const files = [{ path, bytes: Buffer.from(text) }];
    return (await scanSkillFiles(undefined, files)).map((f) => `${f.severity} ${f.rule}`);
  };

  it('leaves ordinary shell alone: assignments, typed declarations, env running a command', async () => {
    expect(
      await rulesOf(
        't.sh',
        'export LANG=C\ndeclare -a list=(a b)\nenv LC_ALL=C sort in.txt\nset -euo pipefail',
      ),
    ).toEqual([]);
  });

  it('warns, with the line, on a host built at run time under no literal domain', async () => {
    expect(await rulesOf('t.py', 'import requests, sys\nurl = sys.argv[1]\nrequests.get(url)')).toEqual([
      'warning dynamic-host',
    ]);
    expect(await rulesOf('t.sh', 'curl -s "https://$HOST/status"')).toEqual(['warning dynamic-host']);
  });

  it('warns on a shell command line from Python, and on exec of code it cannot trace', async () => {
    expect(await rulesOf('t.py', 'import subprocess\nsubprocess.run("ls -l", shell=True)')).toEqual([
      'warning shell-command',
    ]);
    expect(await rulesOf('t.py', 'import sys\nexec(sys.stdin.read())')).toEqual(['warning obfuscation']);
  });

  it('follows a decoded payload through two names and across lines', async () => {
    const text =
      'import zlib, base64\nraw = base64.b64decode(blob)\ncode = zlib.decompress(raw)\n\n\nexec(code)';
    expect(await rulesOf('t.py', text)).toContain('critical dropper');
  });
});
