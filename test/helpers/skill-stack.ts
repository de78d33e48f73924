import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import type { Config } from '../../src/contracts/config/schema.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { AuditJournal } from '../../src/shared/audit/journal.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import { DirSkillStore } from '../../src/worker/skills/dir-store.js';
import { addSkill, approveSkill, type Registry } from '../../src/worker/skills/vetting.js';
import type { FakeChatRequest, FakeStep } from '../../testkit/fakes/fake-ollama.js';
import { type SkillFiles, writeSkill } from './skill-fixtures.js';

const run = promisify(execFile);

/** A fresh skills folder for a test instance. */
export async function skillsDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'sandbot-skills-'));
}

export function registryOf(config: Pick<Config, 'SANDBOT_SKILLS_DIR'>): Registry {
  const store = new DirSkillStore(config.SANDBOT_SKILLS_DIR);
  return { store, ledger: store.ledger };
}

/** Adds (scans) and approves a skill, as an admin would with the CLI. */
export async function vetSkill(registry: Registry, files: SkillFiles, hosts: string[] = []) {
  const { record } = await addSkill(registry, await writeSkill(files), 'test-admin');
  return approveSkill(registry, `${record.name}@${record.version}`, {
    by: 'test-admin',
    hosts,
    acceptFindings: false,
  });
}

/**
 * A fake-model script for skills: "call <tool> <json args>" calls that tool, "sh <command>" runs bash,
 * and a tool's result comes back as the reply ("tool said: …").
 */
export function skillModel(request: FakeChatRequest): FakeStep {
  const last = request.messages.at(-1);
  if (last?.role === 'tool') return { reply: `tool said: ${last.content}` };
  const text = last?.content ?? '';
  const call = /^call (\w+) (.*)$/s.exec(text);
  if (call?.[1]) return { toolCalls: [{ name: call[1], arguments: JSON.parse(call[2] ?? '{}') }] };
  if (text.startsWith('sh ')) return { toolCalls: [{ name: 'bash', arguments: { command: text.slice(3) } }] };
  return { reply: 'ok' };
}

/** Names of the tools offered in the chat request whose last user message was `text`. */
export function toolsOffered(requests: FakeChatRequest[], text: string): string[] {
  const request = lastRequest(requests, text);
  return ((request?.tools ?? []) as { function: { name: string } }[]).map((t) => t.function.name);
}

export function systemOf(requests: FakeChatRequest[], text: string): string {
  const request = lastRequest(requests, text);
  return request?.messages.find((m) => m.role === 'system')?.content ?? '';
}

function lastRequest(requests: FakeChatRequest[], text: string): FakeChatRequest | undefined {
  return [...requests].reverse().find((r) => r.messages.at(-1)?.content === text);
}

/** The audit events of a web conversation, once a turn has finished there. */
export async function auditOf(config: Config, session: string, kinds?: string[]) {
  const journal = new AuditJournal(config.SANDBOT_AUDIT_DIR, config.SANDBOT_INSTANCE);
  const events = parseEvents((await journal.read(webConversationId(session))) ?? '');
  return kinds ? events.filter((e) => kinds.includes(e.kind)) : events;
}

/** Removes the skill volumes of a test instance (cleanInstance removes only sandboxes). */
export async function removeSkillVolumes(docker: Dockerode, instance: string): Promise<void> {
  await removeInstanceVolumes(docker, instance, ['sandbot.kind=skill']);
}

/** Removes every volume of a test instance (with `labels` too, those only). */
export async function removeInstanceVolumes(
  docker: Dockerode,
  instance: string,
  labels: string[] = [],
): Promise<void> {
  const { Volumes } = await docker.listVolumes({
    filters: { label: [`sandbot.instance=${instance}`, ...labels] },
  });
  for (const volume of Volumes ?? [])
    await docker
      .getVolume(volume.Name)
      .remove()
      .catch(() => undefined);
}

/** `sandbot skill …` as its own process (the built CLI, or the sources through tsx): exit code and output. */
export function skillCli(
  args: string[],
  env: Record<string, string>,
  fromSource = false,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const entry = fromSource ? ['--import', 'tsx', 'src/cli/main.ts'] : ['dist/src/cli/main.js'];
  return run(process.execPath, [...entry, 'skill', ...args], { env: { ...process.env, ...env } }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );
}
