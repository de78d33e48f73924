import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inputValidator, SkillToolSpec, ToolInputSchema } from '../../src/contracts/protocol/skill-tools.js';
import { describeDifference } from '../../src/contracts/skills/file-hashes.js';
import { effectiveSkills, SkillRules } from '../../src/shared/stores/skill-enablement.js';
import { parseYamlSubset, splitFrontMatter } from '../../src/worker/skills/front-matter.js';
import { contentHash, fileDigests } from '../../src/worker/skills/hashing.js';
import { FileSkillLedger, verifyLedgerText } from '../../src/worker/skills/ledger.js';
import { compareVersions, parseManifest, parseSkillRef } from '../../src/worker/skills/manifest.js';
import { stripTopFolder } from '../../src/worker/skills/tarball.js';
import { greeterSkill, weatherSkill } from '../helpers/skill-fixtures.js';

const asMap = (files: Record<string, string>) => new Map(Object.entries(files));

describe('SKILL.md front matter', () => {
  it('reads nested maps, lists, flow JSON and block scalars', () => {
    const value = parseYamlSubset([
      'name: demo',
      'version: "1.2.3"',
      'count: 3',
      'on: true',
      'tools:',
      '  - name: a',
      '    input: {"type": "object"}',
      '  - name: b',
      'hosts:',
      '- x.test',
      '- y.test # a comment',
      'notes: |',
      '  line one',
      '',
      '  line three',
      'folded: >-',
      '  one',
      '  two',
    ]);
    expect(value).toEqual({
      name: 'demo',
      version: '1.2.3',
      count: 3,
      on: true,
      tools: [{ name: 'a', input: { type: 'object' } }, { name: 'b' }],
      hosts: ['x.test', 'y.test'],
      notes: 'line one\n\nline three\n',
      folded: 'one two',
    });
  });

  it('names the line of what it cannot read', () => {
    expect(() => parseYamlSubset(['a: 1', 'a: 2'])).toThrow(/line 3: "a" appears twice/);
    expect(() => parseYamlSubset(['a: [x, y]'])).toThrow(/line 2: write \[ … \] and \{ … \} values as JSON/);
    expect(() => parseYamlSubset(['a: &anchor x'])).toThrow(/anchors/);
    expect(splitFrontMatter('---\nname: x\n')).toEqual({ error: expect.stringMatching(/no closing "---"/) });
    expect(splitFrontMatter('# just markdown')).toBeUndefined();
  });
});

describe('skill manifest', () => {
  it('reads SKILL.md front matter with its body as the instructions', () => {
    const result = parseManifest(asMap(greeterSkill()));
    expect(result).toMatchObject({ ok: true, source: 'SKILL.md' });
    if (!result.ok) return;
    expect(result.manifest).toMatchObject({
      name: 'greeter',
      version: '1.0.0',
      instructions: expect.stringContaining('call the greet tool'),
      tools: [{ name: 'greet', run: 'tools/greet.sh', interpreter: 'bash' }],
      permissions: { hosts: [], timeoutSeconds: 10, memoryMb: 64 },
    });
    expect(result.manifest.tools[0]?.input.required).toEqual(['name']);
  });

  it('reads skill.json', () => {
    const result = parseManifest(asMap(weatherSkill(['api.example.test'])));
    expect(result).toMatchObject({
      ok: true,
      source: 'skill.json',
      manifest: { permissions: { hosts: ['api.example.test'] } },
    });
  });

  it('refuses tools that shadow built-ins, scripts that are missing, and unsupported schema keywords', () => {
    const json = (tools: unknown[]) =>
      asMap({
        'skill.json': JSON.stringify({
          name: 'x-skill',
          version: '1.0.0',
          description: 'd',
          instructions: 'i',
          tools,
        }),
        'run.sh': 'echo',
      });
    for (const name of ['bash', 'delegate']) {
      expect(parseManifest(json([{ name, description: 'd', run: 'run.sh' }]))).toMatchObject({
        ok: false,
        error: expect.stringContaining('may not take the name of a built-in tool'),
      });
    }
    expect(parseManifest(json([{ name: 'tool_a', description: 'd', run: 'missing.sh' }]))).toMatchObject({
      ok: false,
      error: expect.stringContaining('"missing.sh", which is not a file of the skill'),
    });
    expect(
      parseManifest(
        json([{ name: 'tool_a', description: 'd', run: 'run.sh', input: { type: 'object', oneOf: [] } }]),
      ),
    ).toMatchObject({ ok: false, error: expect.stringContaining('oneOf') });
    expect(parseManifest(json([{ name: 'tool_a', description: 'd', run: '../x.sh' }]))).toMatchObject({
      ok: false,
    });
  });

  it('says what is missing when there is no manifest or the version is a number', () => {
    expect(parseManifest(asMap({ 'README.md': 'hi' }))).toMatchObject({
      ok: false,
      error: expect.stringContaining('no manifest'),
    });
    const numeric = parseManifest(
      asMap({ 'SKILL.md': '---\nname: abc\nversion: 1.0\ndescription: d\n---\nbody' }),
    );
    expect(numeric).toMatchObject({ ok: false, error: expect.stringContaining('version must be a string') });
  });

  it('reads refs and orders versions', () => {
    expect(parseSkillRef('weather@1.2.3')).toEqual({ name: 'weather', version: '1.2.3' });
    expect(parseSkillRef('weather')).toEqual({ name: 'weather' });
    expect(parseSkillRef('Weather@x')).toBeUndefined();
    expect(['1.10.0', '1.2.0', '1.2.0-beta', '0.9.9'].sort(compareVersions)).toEqual([
      '0.9.9',
      '1.2.0-beta',
      '1.2.0',
      '1.10.0',
    ]);
  });
});

describe('tool input schemas', () => {
  const schema = ToolInputSchema.parse({
    type: 'object',
    properties: {
      name: { type: 'string', maxLength: 5 },
      n: { type: 'integer', minimum: 1 },
      tags: { type: 'array', items: { type: 'string' } },
    },
    required: ['name'],
  });
  const validate = inputValidator(schema);

  it('accepts exactly the declared properties', () => {
    expect(validate.safeParse({ name: 'Ada', n: 2, tags: ['a'] }).success).toBe(true);
    expect(validate.safeParse({ n: 2 }).success).toBe(false);
    expect(validate.safeParse({ name: 'toolong' }).success).toBe(false);
    expect(validate.safeParse({ name: 'Ada', extra: 1 }).success).toBe(false);
    expect(validate.safeParse({ name: 'Ada', n: 1.5 }).success).toBe(false);
  });

  it('refuses "required" names that are not properties, and script paths that leave /skills', () => {
    expect(ToolInputSchema.safeParse({ type: 'object', properties: {}, required: ['x'] }).success).toBe(
      false,
    );
    const spec = {
      name: 'tool_a',
      skill: 'a@1.0.0',
      description: 'd',
      input: schema,
      timeoutMs: 1,
      memoryMb: 1,
    };
    expect(SkillToolSpec.safeParse({ ...spec, run: '/skills/abc/run.sh' }).success).toBe(true);
    expect(SkillToolSpec.safeParse({ ...spec, run: '/skills/abc/../../etc/x' }).success).toBe(false);
    expect(SkillToolSpec.safeParse({ ...spec, run: '/workspace/run.sh' }).success).toBe(false);
  });
});

describe('content hashes', () => {
  const files = [
    { path: 'a.sh', bytes: Buffer.from('echo a') },
    { path: 'b/c.md', bytes: Buffer.from('text') },
  ];
  const base = fileDigests(files);

  it('changes when a file changes, is renamed, added or removed', () => {
    const hash = contentHash(base);
    expect(contentHash(fileDigests([...files].reverse()))).toBe(hash);
    expect(contentHash(fileDigests([{ ...files[0]!, bytes: Buffer.from('echo b') }, files[1]!]))).not.toBe(
      hash,
    );
    expect(contentHash(fileDigests([{ ...files[0]!, path: 'z.sh' }, files[1]!]))).not.toBe(hash);
    expect(contentHash(fileDigests([...files, { path: 'd', bytes: Buffer.from('') }]))).not.toBe(hash);
    expect(contentHash(fileDigests([files[0]!]))).not.toBe(hash);
  });

  it('says how two versions differ', () => {
    const now = fileDigests([
      { path: 'a.sh', bytes: Buffer.from('echo evil') },
      { path: 'new.sh', bytes: Buffer.from('x') },
    ]);
    expect(describeDifference(base, now)).toBe('changed: a.sh; missing: b/c.md; added: new.sh');
  });

  it('drops a top folder every tarball entry shares', () => {
    const stripped = stripTopFolder([
      { path: 'greeter/SKILL.md', bytes: Buffer.from('') },
      { path: 'greeter/tools/g.sh', bytes: Buffer.from('') },
    ]);
    expect(stripped.map((f) => f.path)).toEqual(['SKILL.md', 'tools/g.sh']);
  });
});

describe('enablement rules and the ledger chain', () => {
  it('combines config rules with admin enables and disables', () => {
    const rules = SkillRules.parse('slack:T1:C1=greeter,weather@1.0.0;web:=greeter');
    expect(effectiveSkills(rules, 'slack:T1:C1:123.4').map((r) => r.name)).toEqual(['greeter', 'weather']);
    expect(effectiveSkills(rules, 'slack:T1:C2:123.4')).toEqual([]);
    const override = { enabled: [{ name: 'docs' }], disabled: ['weather'], by: 'a', at: '' };
    expect(effectiveSkills(rules, 'slack:T1:C1:1.2', override).map((r) => r.name)).toEqual([
      'docs',
      'greeter',
    ]);
    expect(SkillRules.safeParse('slack:T1=Not A Skill').success).toBe(false);
    expect(() => SkillRules.parse('slack:T1=Not_A_Skill!')).toThrow(/is not a skill name/);
    expect(() => SkillRules.parse('nonsense')).toThrow(/a rule is <conversation-prefix>=<skill>,<skill>/);
  });

  it('finds an edited or deleted ledger entry', async () => {
    const ledger = new FileSkillLedger(await mkdtemp(join(tmpdir(), 'sandbot-ledger-')));
    await ledger.append({ actor: 'admin:ann', action: 'add', skill: 'x@1.0.0', data: { hash: 'h' } });
    await ledger.append({ actor: 'admin:ann', action: 'approve', skill: 'x@1.0.0', data: {} });
    expect(await ledger.verify()).toEqual({ entries: 2 });
    const text = await readFile(ledger.path, 'utf8');
    await writeFile(ledger.path, text.replace('admin:ann', 'admin:bob'));
    expect((await ledger.verify()).broken).toMatch(/^line 1: content does not match its hash/);
    expect(verifyLedgerText(text.split('\n').slice(1).join('\n')).broken).toMatch(/seq 2 after 0/);
  });
});
