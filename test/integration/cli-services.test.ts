import { execFile, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { Quarantine } from '../../src/shared/stores/quarantine.js';
import { cleanInstance, SANDBOX_IMAGE } from '../../testkit/instance.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { testConfig } from '../helpers/stack.js';

/**
 * Every `sandbot` command that touches Redis or the engine, as its own process: against the real
 * services, and with Redis down (SANDBOT_REDIS_URL at a closed port), where a command that needs
 * Redis says so in one line and exits 1, and one that does not still works.
 */

const run = promisify(execFile);
const auditDir = mkdtempSync(join(tmpdir(), 'sandbot-cli-audit-'));
const config = testConfig(testInstance('cli-svc'), { SANDBOT_AUDIT_DIR: auditDir });
const DOWN = 'redis://127.0.0.1:1';
const admin = `admin:${userInfo().username}`;
const env = (redisUrl = REDIS_URL) => ({
  ...process.env,
  SANDBOT_INSTANCE: config.SANDBOT_INSTANCE,
  SANDBOT_REDIS_URL: redisUrl,
  SANDBOT_AUDIT_DIR: auditDir,
  SANDBOX_DISK_DIR: config.SANDBOX_DISK_DIR,
  SANDBOX_LAYER: config.SANDBOX_LAYER,
  SANDBOX_IMAGE,
  OLLAMA_HOST: 'http://127.0.0.1:9',
});
type Result = { code: number; stdout: string; stderr: string };
const sandbot = (redisUrl: string, ...args: string[]): Promise<Result> =>
  run(process.execPath, ['dist/src/cli/main.js', ...args], { env: env(redisUrl), timeout: 90_000 }).then(
    (r) => ({ code: 0, ...r }),
    (e: Result) => e,
  );
const up = (...args: string[]) => sandbot(REDIS_URL, ...args);
const down = (...args: string[]) => sandbot(DOWN, ...args);
const driver = sandboxDriverFromConfig(config);
const redis = new Redis(REDIS_URL);
const quarantine = new Quarantine(redis, config.SANDBOT_INSTANCE);

async function running(name: string): Promise<boolean> {
  const [sandbox] = (await driver.list()).filter((s) => s.conversation === name);
  return sandbox?.state === 'running';
}

async function startSandbox(name: string) {
  const conversation = webConversationId(name);
  await (await driver.open(conversation)).close();
  expect(await running(conversation)).toBe(true);
  return conversation;
}

/** One line on stderr naming Redis and its address, exit code 1. */
function expectRedisDownLine(result: Result) {
  expect(result.code, result.stdout + result.stderr).toBe(1);
  const lines = result.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^sandbot: .*Redis.*127\.0\.0\.1:1/);
  expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
}

afterAll(async () => {
  await cleanInstance(config);
  redis.disconnect();
});

describe('sandbot CLI against the real services', () => {
  it('kill: SIGKILLs the sandbox, quarantines it, and the audit says who; release lets it run again', async () => {
    const conversation = await startSandbox('cli-kill');
    const killed = await up('sandbox', 'kill', conversation, '--reason', 'cli test');
    expect(killed, killed.stderr).toMatchObject({ code: 0, stderr: '' });
    expect(killed.stdout.trim()).toBe(
      `killed ${conversation}; quarantined until \`sandbot sandbox release ${conversation}\``,
    );
    expect(await running(conversation)).toBe(false);
    expect(await quarantine.get(conversation)).toMatchObject({ reason: 'cli test', by: admin });
    const released = await up('sandbox', 'release', conversation);
    expect(released).toMatchObject({ code: 0, stdout: `released ${conversation}\n` });
    expect(await quarantine.get(conversation)).toBeUndefined();
    expect(await up('sandbox', 'release', conversation)).toMatchObject({
      code: 1,
      stdout: `${conversation} was not quarantined\n`,
    });
    const shown = await up('audit', 'show', conversation);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`sandbox\\.quarantine +${admin} +\\{"reason":"cli test"\\}`));
    expect(shown.stdout).toMatch(new RegExp(`sandbox\\.kill +${admin} .*"killed":true`));
    expect(shown.stdout).toMatch(new RegExp(`sandbox\\.release +${admin}`));
    const verified = await up('audit', 'verify', conversation);
    expect(verified).toMatchObject({ code: 0, stdout: expect.stringMatching(/^ok +web:cli-kill +3 events/) });
    expect((await up('audit', 'export', conversation)).stdout.trim().split('\n')).toHaveLength(3);
  });

  it('audit tail shows a kill from the CLI as it happens', async () => {
    const conversation = await startSandbox('cli-tail');
    const tail = spawn(process.execPath, ['dist/src/cli/main.js', 'audit', 'tail', '--kind', 'sandbox.*'], {
      env: env(),
    });
    let out = '';
    let err = '';
    tail.stdout.on('data', (d) => (out += d));
    tail.stderr.on('data', (d) => (err += d));
    try {
      await until(() => err.includes('tailing'), 'audit tail to start');
      expect((await up('sandbox', 'kill', conversation)).code).toBe(0);
      await until(() => /sandbox\.quarantine/.test(out), 'the quarantine on the live tail');
      expect(out).toContain(`${conversation}  `);
      expect(out).toContain(admin);
    } finally {
      tail.kill('SIGINT');
    }
    expect((await up('sandbox', 'release', conversation)).code).toBe(0);
  });

  it('ls, stop and rm work on the engine', async () => {
    const conversation = await startSandbox('cli-engine');
    expect((await up('sandbox', 'ls')).stdout).toMatch(/web:cli-engine\trunning\t/);
    expect((await up('sandbox', 'stop', conversation)).stdout).toBe(`stopped ${conversation}\n`);
    expect((await up('sandbox', 'rm', conversation, '--wipe')).stdout).toBe(
      `removed ${conversation} and its volumes\n`,
    );
  });
});

describe('sandbot CLI with Redis down', () => {
  it('kill still SIGKILLs the sandbox, and says in one line that it is not quarantined (exit 1)', async () => {
    const conversation = await startSandbox('cli-down');
    const result = await down('sandbox', 'kill', conversation);
    expectRedisDownLine(result);
    expect(result.stderr).toContain('the sandbox was killed, but the conversation is NOT quarantined');
    expect(await running(conversation)).toBe(false);
    expect(await quarantine.get(conversation)).toBeUndefined();
  });

  it('release, audit tail and doctor say Redis is down (exit 1)', async () => {
    const released = await down('sandbox', 'release', 'web:cli-down');
    expectRedisDownLine(released);
    expect(released.stderr).toContain('nothing done');
    expectRedisDownLine(await down('audit', 'tail'));
    const doctor = await down('doctor');
    expect(doctor.code).toBe(1);
    expect(doctor.stdout).toMatch(/✗ Redis: .*127\.0\.0\.1:1/);
  });

  it('commands that need only the engine or the audit files still work', async () => {
    expect(await down('sandbox', 'ls')).toMatchObject({ code: 0 });
    expect((await down('sandbox', 'rm', 'web:cli-down', '--wipe')).stdout).toBe(
      'removed web:cli-down and its volumes\n',
    );
    expect((await down('audit', 'show', 'web:cli-kill')).stdout).toMatch(/sandbox\.release/);
    const verified = await down('audit', 'verify', 'web:cli-kill');
    expect(verified).toMatchObject({ code: 0, stdout: expect.stringContaining('Redis did not answer') });
  });
});

async function until(check: () => boolean, what: string, ms = 20_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}
