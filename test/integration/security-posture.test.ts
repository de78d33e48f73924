import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseEnv, promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeRedisPosture } from '../../src/shared/posture/redis-posture.js';
import { freePort } from '../../testkit/ports.js';
import { eventually, isGone } from '../helpers/processes.js';

/**
 * Issue #18 items 5 and 6 as an operator meets them: setup's Redis (scripts/setup-redis.sh, on a port
 * and folder of this test's own, never the machine's Redis) refuses commands without its password, and
 * `sandbot doctor --security` (the built CLI) names each weakened setting and exits 1 on a high one.
 */

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'sandbot-posture-'));
const CLI = resolve('dist/src/cli/main.js');
const pids: number[] = [];

const setupRedis = (port: number, envFile: string) =>
  run('bash', ['scripts/setup-redis.sh', String(port), join(dir, `redis-${port}`), envFile], {
    env: { ...process.env, SANDBOT_REDIS_URL: '' },
  });

/** The first reply line to a command sent without credentials (a raw socket: clients say HELLO first). */
async function anonymousReply(port: number, command: string): Promise<string> {
  const socket = connect({ port, host: '127.0.0.1' });
  try {
    await once(socket, 'connect');
    socket.write(`${command}\r\n`);
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    return chunk.toString().split('\r\n')[0] ?? '';
  } finally {
    socket.destroy();
  }
}

const urlIn = (envFile: string) => parseEnv(readFileSync(envFile, 'utf8')).SANDBOT_REDIS_URL ?? '';

const doctorSecurity = (env: Record<string, string>) =>
  run(process.execPath, [CLI, 'doctor', '--security'], {
    cwd: dir, // no .env of the repository's
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
  }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );

let guarded: { port: number; url: string };
let open: { port: number; url: string };

beforeAll(async () => {
  const port = await freePort();
  const envFile = join(dir, '.env.guarded');
  await setupRedis(port, envFile);
  pids.push(Number(readFileSync(join(dir, `redis-${port}`, `redis-${port}.pid`), 'utf8')));
  guarded = { port, url: urlIn(envFile) };
  // A Redis without a password, as on a machine where one ran before setup (started by this test).
  const openPort = await freePort();
  const child = spawn('redis-server', ['--port', String(openPort), '--save', '', '--dir', dir], {
    stdio: 'ignore',
  });
  if (child.pid) pids.push(child.pid);
  open = { port: openPort, url: `redis://127.0.0.1:${openPort}` };
  await eventually(() => child.exitCode === null, 'redis-server running');
  for (let i = 0; i < 100 && !(await probeRedisPosture(open.url)); i++)
    await new Promise((r) => setTimeout(r, 100));
});

afterAll(async () => {
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  await eventually(() => pids.every(isGone), 'test Redis servers gone', 10_000).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

describe("setup's Redis", () => {
  it('refuses a command without the password, answers with the one in the env file (mode 0600)', async () => {
    expect(guarded.url).toMatch(new RegExp(`^redis://sandbot:[0-9a-f]{48}@127\\.0\\.0\\.1:${guarded.port}$`));
    expect(statSync(join(dir, '.env.guarded')).mode & 0o777).toBe(0o600);
    expect(await anonymousReply(guarded.port, 'SET k v')).toMatch(/^-NOAUTH/);
    const sandbot = new Redis(guarded.url, { lazyConnect: true });
    await sandbot.connect();
    expect(await sandbot.set('k', 'v')).toBe('OK');
    // The app's user cannot turn Redis into a way onto the host (CONFIG SET dir + SAVE, MODULE LOAD).
    await expect(sandbot.call('CONFIG', 'SET', 'dir', '/tmp')).rejects.toThrow(/NOPERM/);
    sandbot.disconnect();
    expect(await probeRedisPosture(guarded.url)).toEqual({ open: false });
  });

  it('is idempotent: run again, it keeps the server and the password', async () => {
    const envFile = join(dir, '.env.guarded');
    await setupRedis(guarded.port, envFile);
    expect(urlIn(envFile)).toBe(guarded.url);
  });

  it('leaves a Redis already running without a password as it is, and says so', async () => {
    const envFile = join(dir, '.env.open');
    const { stdout } = await setupRedis(open.port, envFile);
    expect(stdout).toMatch(/accepts commands without a password/);
    expect(await probeRedisPosture(open.url)).toMatchObject({ open: true, bind: expect.any(Array) });
  });
});

describe('sandbot doctor --security', () => {
  it('names each weakened setting with its fix, and exits 1 on a high one', async () => {
    const result = await doctorSecurity({
      SANDBOT_REDIS_URL: open.url,
      SANDBOX_WORKSPACE_MB: '0',
      SANDBOT_HTTP_HOST: '0.0.0.0',
      SANDBOT_NETWORK_RULES: 'web:=*.example.com',
      DISCORD_TOKEN: 'not-a-token',
      DISCORD_ALLOW_ALL: 'true',
      DISCORD_APPLICATION_ID: '1',
      SANDBOT_WEB_CHAT: 'on',
    });
    expect(result.code).toBe(1);
    const lines = result.stdout.split('\n');
    for (const named of [
      /^high +SANDBOT_REDIS_URL: Redis accepts commands without a password/,
      /^high +SANDBOT_API_TOKEN: .*listens on 0\.0\.0\.0/,
      /^high +DISCORD_ALLOWED_GUILDS/,
      /^medium +SANDBOX_WORKSPACE_MB=0/,
      /^medium +SANDBOT_NETWORK_RULES: .*\*\.example\.com/,
    ]) {
      expect(
        lines.some((line) => named.test(line)),
        String(named),
      ).toBe(true);
    }
    expect(lines.filter((line) => /^ +fix: /.test(line)).length).toBeGreaterThanOrEqual(5);
  });

  it('names the engine over plain tcp:// and says what it could not judge', async () => {
    const result = await doctorSecurity({
      SANDBOT_REDIS_URL: guarded.url,
      SANDBOT_API_TOKEN: 't'.repeat(32),
      DOCKER_HOST: 'tcp://10.255.255.1:2375',
    });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^high +DOCKER_HOST=tcp:\/\/10\.255\.255\.1:2375: /m);
    expect(result.stdout).toMatch(/^note: the engine did not answer/m);
    // setup's Redis: nothing to say about it.
    expect(result.stdout).not.toMatch(/SANDBOT_REDIS_URL|Redis bind/);
  });
});
