import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { createConversationControl } from '../../src/shared/queue/conversation-control.js';
import { ConversationStore } from '../../src/shared/queue/conversation-store.js';
import { createRedis } from '../../src/shared/redis/connection.js';
import { readSandboxReports } from '../../src/shared/stores/sandbox-report.js';
import { SKILL_TABLES } from '../../src/worker/skills/pg-schema.js';
import { PgSkillStore } from '../../src/worker/skills/pg-store.js';
import { addSkill } from '../../src/worker/skills/vetting.js';
import { SANDBOX_IMAGE } from '../../testkit/instance.js';
import { dropInstanceKeys, REDIS_URL, testInstance } from '../../testkit/redis.js';
import { describePostgres, dropInstanceRows } from '../helpers/postgres.js';
import { replyText } from '../helpers/shell-model.js';
import { greeterSkill, writeSkill } from '../helpers/skill-fixtures.js';
import { removeSkillVolumes, skillModel, toolsOffered } from '../helpers/skill-stack.js';
import { dropSkillRows } from '../helpers/skills-postgres.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { type ScriptedStack, startScriptedStack, TEST_LAYER, testConfig } from '../helpers/stack.js';

/**
 * Skills shared through PostgreSQL, no shared folder: `sandbot skill add` on "host A" (its own skills
 * folder), `skill approve|ls|show|log` from "host C" (another empty folder), and a worker on "host B"
 * (a third empty folder) that loads the approved skill, mounts it and runs its tool in a real sandbox.
 * Bytes tampered with in the database are refused for the turn as on disk; a tampered ledger row is
 * named by `skill log --verify`. The folders stay empty throughout.
 */

const run = promisify(execFile);
const instance = testInstance('skills-pg-hosts');
const docker = createDocker(undefined);

vi.setConfig({ testTimeout: 180_000 });

describePostgres('skills in PostgreSQL, seen from several hosts', (url) => {
  const dirs = { a: tmp('a'), b: tmp('b'), c: tmp('c') };
  const config = testConfig(instance, {
    SANDBOT_SKILLS_DIR: dirs.b,
    SANDBOT_DATABASE_URL: url,
    SANDBOT_SKILLS: 'web:pgsk-use=greeter',
  });
  const redis = createRedis(REDIS_URL, 'skills-pg-hosts');
  const sql = new pg.Client({ connectionString: url });
  let stack: ScriptedStack;

  /** `sandbot skill …` as its own process, from the sources, on a host whose skills folder is `dir`. */
  const sandbot = (dir: string, ...args: string[]) => sandbotAt(dir, url, ...args);
  const sandbotAt = (dir: string, databaseUrl: string, ...args: string[]) =>
    run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'skill', ...args], {
      env: {
        ...process.env,
        SANDBOT_INSTANCE: instance,
        SANDBOT_SKILLS_DIR: dir,
        SANDBOT_DATABASE_URL: databaseUrl,
        SANDBOX_IMAGE,
        SANDBOX_LAYER: TEST_LAYER,
        SANDBOT_LOG_LEVEL: 'silent',
      },
    }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );

  beforeAll(async () => {
    await sql.connect();
    await dropSkillRows(url, instance);
  });
  afterAll(async () => {
    await stack?.stop();
    await removeSkillVolumes(docker, instance);
    redis.disconnect();
    await dropInstanceKeys(instance);
    await dropSkillRows(url, instance);
    await dropInstanceRows(url, instance);
    await sql.end();
    for (const dir of Object.values(dirs)) rmSync(dir, { recursive: true, force: true });
  });

  it('adds on one host, approves, lists and shows from another; no folder gets a file', async () => {
    const added = await sandbot(dirs.a, 'add', await writeSkill(greeterSkill()), '--by', 'ann');
    expect(added.stderr).not.toMatch(/behavioural run did not happen/);
    expect(added).toMatchObject({ code: 0, stdout: expect.stringContaining('status: pending') });
    const approved = await sandbot(dirs.c, 'approve', 'greeter@1.0.0', '--by', 'bob');
    expect(approved.code).toBe(0);
    expect(approved.stdout).toMatch(/^approved greeter@1\.0\.0 \(sha256 [0-9a-f]{64}\) by bob/);
    expect((await sandbot(dirs.c, 'ls')).stdout).toMatch(/^greeter@1\.0\.0\s+approved\s+sha256 /m);
    const shown = await sandbot(dirs.a, 'show', 'greeter');
    expect(shown.stdout).toContain('status: approved');
    expect(shown.stdout).toContain('approved by bob at ');
    // Both reports travel with the record: the behavioural run host A did is shown on host C.
    expect((await sandbot(dirs.c, 'show', 'greeter@1.0.0')).stdout).toMatch(
      /behaviour: 0 critical, 0 warnings — 1 tool\(s\) run under /,
    );
    for (const dir of Object.values(dirs)) expect(readdirSync(dir)).toEqual([]);
    // A database that does not answer is said in one line, not taken for "no skills".
    const away = await sandbotAt(dirs.c, 'postgresql://sandbot:pw@127.0.0.1:9/sandbot', 'ls');
    expect(away.code).toBe(1);
    expect(away.stderr).toMatch(
      /^sandbot: cannot reach the skills database postgresql:\/\/sandbot:\*\*\*@127\.0\.0\.1:9\/sandbot \(instance .*\): connect ECONNREFUSED 127\.0\.0\.1:9\n$/,
    );
  });

  it('loads, mounts and runs the skill in a worker whose skills folder is empty', async () => {
    // A newer version added (not approved) elsewhere: the worker offers it for approval, loads 1.0.0.
    const elsewhere = new PgSkillStore(url, instance);
    await addSkill(
      { store: elsewhere, ledger: elsewhere.ledger },
      await writeSkill(greeterSkill('2.0.0')),
      'dan',
    );
    await elsewhere.close();
    stack = await startScriptedStack(config, skillModel);
    await expect
      .poll(async () =>
        [...(await readSandboxReports(redis, instance)).values()].flatMap((r) =>
          (r.pendingSkills ?? []).map((p) => `${p.ref} by ${p.addedBy}`),
        ),
      )
      .toEqual(['greeter@2.0.0 by dan']);
    const text = await replyText(stack.url, 'pgsk-use', 'call greet {"name":"Ada"}');
    expect(text).toBe('tool said: exit code 0\nHello, Ada! (greeter skill, uid 1000, in /workspace)');
    // Enabled from chat too: the worker's skill commands read the same database.
    const conversations = new ConversationStore(redis, instance);
    const skills = createConversationControl(redis, conversations, config).skills;
    expect(
      await skills?.run(webConversationId('pgsk-chat'), { action: 'enable', name: 'greeter' }, 'admin:web:x'),
    ).toBe('Skill greeter@1.0.0 is enabled here from the next turn (greet; network: none).');
    expect(await replyText(stack.url, 'pgsk-chat', 'call greet {"name":"Cy"}')).toContain('Hello, Cy!');
    expect(readdirSync(dirs.b)).toEqual([]);
  });

  it('refuses the skill for the turn once its bytes are changed in the database', async () => {
    await sql.query(
      `UPDATE ${SKILL_TABLES.files} SET bytes = bytes || convert_to('cat ~/.aws/credentials', 'UTF8')
       WHERE instance = $1 AND name = 'greeter' AND version = '1.0.0' AND path = 'tools/greet.sh'`,
      [instance],
    );
    const sse = await openSse(`${stack.url}/api/conversations/pgsk-use/events`);
    try {
      await postMessage(stack.url, 'pgsk-use', 'call greet {"name":"Eve"}');
      const notice = await sse.waitFor((e) => e.type === 'progress' && e.text.startsWith('Not loaded'));
      expect(notice.type === 'progress' && notice.text).toContain(
        'skill greeter@1.0.0 (its files changed since approval (changed: tools/greet.sh)',
      );
      const end = await sse.waitFor((e) => e.type === 'reply' || e.type === 'error');
      expect(end.type === 'reply' && end.text).toMatch(/unknown tool "greet"/);
    } finally {
      sse.close();
    }
    expect(toolsOffered(stack.ollama.chatRequests(), 'call greet {"name":"Eve"}')).not.toContain('greet');
    expect((await sandbot(dirs.c, 'ls')).stdout).toMatch(
      /^greeter@1\.0\.0\s+REFUSED: its files changed since approval \(changed: tools\/greet\.sh\)/m,
    );
  });

  it('verifies the ledger from another host and names a tampered row', async () => {
    // add, scan, approve of 1.0.0; add, scan of 2.0.0; and its behavioural run by `skill ls` (it had none).
    const intact = await sandbot(dirs.c, 'log', '--verify');
    expect(intact).toMatchObject({ code: 0, stdout: 'the skills ledger is intact (6 entries)\n' });
    const log = await sandbot(dirs.a, 'log');
    expect(log.stdout).toMatch(/#3 {2}approve {2}greeter@1\.0\.0 {2}admin:bob /);
    await sql.query(
      `UPDATE ${SKILL_TABLES.ledger} SET entry = replace(entry, 'admin:bob', 'admin:eve') WHERE instance = $1 AND seq = 3`,
      [instance],
    );
    const broken = await sandbot(dirs.a, 'log', '--verify');
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain(
      'sandbot: the skills ledger is broken after 2 entries: row seq 3: content does not match its hash (edited)',
    );
  });
});

function tmp(label: string): string {
  return mkdtempSync(join(tmpdir(), `sandbot-skills-pg-${label}-`));
}
