import { mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runTool } from '../../sandbox/runtime/tools/run-tool.js';
import type { ToolContext } from '../../sandbox/runtime/tools/types.js';
import { SkillToolSpec } from '../../src/contracts/protocol/skill-tools.js';

/** The runtime's side of skill tools, with real child processes: validation first, then the script. */

let root: string;
let workspace: string;
const greet = SkillToolSpec.parse({
  name: 'greet',
  skill: 'greeter@1.0.0',
  description: 'Greets',
  run: '/skills/greeter/greet.sh',
  interpreter: 'bash',
  input: { type: 'object', properties: { name: { type: 'string', maxLength: 20 } }, required: ['name'] },
  timeoutMs: 5000,
  memoryMb: 64,
});
const ctx = (extra: Partial<ToolContext> = {}): ToolContext => ({
  workspace,
  timeoutMs: 10_000,
  outputBytes: 4096,
  signal: new AbortController().signal,
  skillTools: [greet],
  skillsRoot: root,
  ...extra,
});

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sandbot-skills-root-'));
  workspace = await mkdtemp(join(tmpdir(), 'sandbot-skills-ws-'));
  await mkdir(join(root, 'greeter'));
  await writeFile(join(root, 'greeter', 'greet.sh'), 'input=$(cat)\necho "got $input in $(pwd)"\n');
  await writeFile(join(root, 'greeter', 'slow.sh'), 'sleep 5\n');
  await symlink('/bin/echo', join(root, 'greeter', 'escape.sh'));
});

describe('skill tools in the runtime', () => {
  it('runs the script with the validated arguments as JSON on stdin, in the workspace', async () => {
    const result = await runTool('greet', { name: 'Ada' }, ctx());
    expect(result.ok).toBe(true);
    expect(result.output).toContain(`got {"name":"Ada"} in ${workspace}`);
  });

  it('refuses arguments that do not match the declared input, without running anything', async () => {
    for (const args of [{}, { name: 'x'.repeat(21) }, { name: 'Ada', extra: true }, { name: 7 }]) {
      const result = await runTool('greet', args, ctx());
      expect(result).toMatchObject({
        ok: false,
        output: expect.stringMatching(/^invalid arguments for greet: /),
      });
    }
  });

  it('passes hostile argument text through untouched (no shell expansion)', async () => {
    const name = '$(id)`x`\'"';
    const result = await runTool('greet', { name }, ctx());
    expect(result.output).toContain(JSON.stringify({ name }));
    expect(result.output).not.toMatch(/uid=/);
  });

  it('bounds a call by the skill’s own time limit', async () => {
    const slow = { ...greet, name: 'slow_tool', run: '/skills/greeter/slow.sh', timeoutMs: 300 };
    const result = await runTool('slow_tool', { name: 'a' }, ctx({ skillTools: [slow] }));
    expect(result).toMatchObject({ ok: false, output: expect.stringContaining('timed out after 0.3s') });
  });

  it('refuses a script that links out of its skill folder, and a skill that is not mounted', async () => {
    const escaping = { ...greet, name: 'escape', run: '/skills/greeter/escape.sh' };
    expect((await runTool('escape', { name: 'a' }, ctx({ skillTools: [escaping] }))).output).toMatch(
      /leads outside/,
    );
    const gone = { ...greet, name: 'gone', run: '/skills/other/run.sh' };
    expect((await runTool('gone', { name: 'a' }, ctx({ skillTools: [gone] }))).output).toMatch(/not mounted/);
  });

  it('lists skill tools among the available ones when the model names an unknown tool', async () => {
    const result = await runTool('nope', {}, ctx());
    expect(result.output).toMatch(/available tools are bash, .*, greet$/);
  });
});
