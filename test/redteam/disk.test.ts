import { execFile } from 'node:child_process';
import { chmodSync, chownSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxNames } from '../../sandbox/host/driver/docker-spec.js';
import {
  ensureEngineQuotaMounts,
  quotaHelperSpec,
  removeEngineQuotaMounts,
} from '../../sandbox/host/driver/engine-quota.js';
import { SANDBOX_IMAGE } from '../../testkit/instance.js';
import { REDIS_URL } from '../../testkit/redis.js';
import { conversation, type Redteam, startRedteam, until } from './harness.js';

/**
 * Red team, the host's disk and the kill switch, with default settings (caps on): filling /workspace
 * past its cap, links an agent plants where sandbot's volume code once chowned, and the operator's
 * `sandbot sandbox kill|release` run as its own process against a turn in progress.
 */

const run = promisify(execFile);
const diskDir = join(tmpdir(), `sandbot-rt-caps-${process.pid}`);
const MiB = 1024 * 1024;
let rt: Redteam;

beforeAll(async () => {
  rt = await startRedteam('disk', { settings: { SANDBOX_DISK_DIR: diskDir } });
});

afterAll(async () => {
  await rt?.stop();
  rmSync(diskDir, { recursive: true, force: true });
});

/** A root-owned file on the host, the target of the agent's links. */
function hostVictim(name: string): string {
  const path = join(tmpdir(), `sandbot-rt-${name}-${process.pid}`);
  writeFileSync(path, 'root only\n');
  chownSync(path, 0, 0);
  chmodSync(path, 0o600);
  return path;
}

const sandbot = (...args: string[]) =>
  run(process.execPath, ['dist/src/cli/main.js', ...args], {
    env: {
      ...process.env,
      SANDBOT_INSTANCE: rt.instance,
      SANDBOT_REDIS_URL: REDIS_URL,
      SANDBOT_AUDIT_DIR: rt.config.SANDBOT_AUDIT_DIR,
      SANDBOX_DISK_DIR: diskDir,
      SANDBOX_LAYER: rt.config.SANDBOX_LAYER,
      SANDBOX_IMAGE,
    },
  }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );

describe('red team: the host’s disk and the kill switch (default settings)', () => {
  it('dd past the default 2 GiB cap of /workspace fails at the cap; the host holds no more than the cap', async () => {
    const session = 'disk-fill';
    const capMb = rt.config.SANDBOX_WORKSPACE_MB;
    expect(capMb).toBe(2048);
    const turn = await rt.ask(
      session,
      `dd if=/dev/zero of=/workspace/fill bs=1M count=${capMb + 300} 2>&1 | grep -E "No space|copied"; df -m /workspace | tail -1; echo fill-done`,
      240_000,
    );
    expect(turn.text).toContain('fill-done');
    expect(turn.text).toContain('No space left on device');
    const image = join(diskDir, `${sandboxNames(rt.instance, conversation(session)).workspaceVolume}.img`);
    const onHost = statSync(image).blocks * 512;
    expect(onHost).toBeLessThanOrEqual(capMb * MiB);
    const after = await rt.ask(session, 'rm -f /workspace/fill; echo cleaned', 120_000);
    expect(after.text).toContain('cleaned');
    await rt.auditedCall(session, 'of=/workspace/fill');
    await rt.row(
      `dd ${capMb + 300} MB into /workspace (default cap ${capMb} MiB)`,
      `No space left on device at the cap; the image holds ${Math.round(onHost / MiB)} MiB on the host`,
      session,
    );
  }, 300_000);

  it('inbox/outbox made links to host files are not followed when the volume is mounted again', async () => {
    const session = 'disk-links';
    const [inboxTarget, outboxTarget] = [hostVictim('inbox'), hostVictim('outbox')];
    const planted = await rt.ask(
      session,
      `cd /workspace && rm -rf inbox outbox && ln -s ${inboxTarget} inbox && ln -s ${outboxTarget} outbox && ls -l inbox outbox && echo planted`,
    );
    expect(planted.text).toContain('planted');
    // The volume mounted afresh (as after a host reboot): sandbot's volume code runs again.
    await rt.container(session).stop({ t: 0 });
    const names = sandboxNames(rt.instance, conversation(session));
    await run('umount', [join(diskDir, 'mnt', names.workspaceVolume)]);
    const next = await rt.ask(session, 'ls -l /workspace; echo links-after');
    expect(next.text).toContain('links-after');
    for (const target of [inboxTarget, outboxTarget]) {
      expect(statSync(target)).toMatchObject({ uid: 0, gid: 0 });
      expect(statSync(target).mode & 0o777).toBe(0o600);
    }
    await rt.row(
      'inbox and outbox turned into links to root-owned host files, volume mounted again',
      'targets not touched (still root:root 0600): nothing of sandbot looks inside a mounted volume',
      session,
    );
  });

  it('the micro-VM’s volume helper (run here on the host engine) follows no link and has its own PID namespace', async () => {
    const root = `/var/lib/docker/sandbot-rt-quota-${process.pid}`;
    const name = `${rt.instance}-helper-ws`;
    const target = hostVictim('helper');
    const mounts = [{ name, sizeMb: 16, folders: ['inbox', 'outbox'] }];
    const spec = quotaHelperSpec(SANDBOX_IMAGE, rt.instance, root, 'ensure', mounts);
    expect(spec.HostConfig?.PidMode).toBeUndefined();
    expect(spec.HostConfig?.Privileged).toBeUndefined();
    try {
      const [mnt] = await ensureEngineQuotaMounts(rt.docker, SANDBOX_IMAGE, rt.instance, root, mounts);
      // The agent (uid 1000, in a sandbox-like container) replaces its folders with links.
      await run('docker', [
        'run',
        '--rm',
        '--user',
        '1000:1000',
        '--network',
        'none',
        '-v',
        `${mnt}:/workspace`,
        '--entrypoint',
        'sh',
        SANDBOX_IMAGE,
        '-c',
        `cd /workspace && rm -rf inbox outbox && ln -s ${target} inbox && ln -s ${target} outbox`,
      ]);
      await run('umount', [mnt as string]);
      await ensureEngineQuotaMounts(rt.docker, SANDBOX_IMAGE, rt.instance, root, mounts);
      expect(statSync(target)).toMatchObject({ uid: 0, gid: 0 });
      expect(statSync(target).mode & 0o777).toBe(0o600);
    } finally {
      await removeEngineQuotaMounts(rt.docker, SANDBOX_IMAGE, rt.instance, root, [name]).catch(() => false);
      rmSync(root, { recursive: true, force: true });
    }
    await rt.row(
      'links planted in a helper-made volume, then the micro-VM’s volume helper run again',
      'target not chowned; helper unprivileged (CAP_SYS_ADMIN, loop devices), no host PID namespace',
      'disk-links',
    );
  });

  it('`sandbot sandbox kill` from the CLI stops a running turn, quarantines it, and the audit says who; release lets it run', async () => {
    const session = 'disk-kill';
    await rt.ask(session, 'echo warm');
    const turn = rt.ask(session, 'sleep 60; echo never-here', 90_000);
    await until(async () => {
      const events = await rt.audit(session);
      return (
        events.filter((e) => e.kind === 'tool.call').length >= 1 &&
        (await rt.container(session).inspect()).State.Running
      );
    }, 'the long turn to start');
    await new Promise((r) => setTimeout(r, 1500));
    const killed = await sandbot('sandbox', 'kill', conversation(session), '--reason', 'red team');
    expect(killed, killed.stderr).toMatchObject({ code: 0, stderr: '' });
    const ended = await turn;
    expect(ended.text).not.toContain('never-here');
    expect((await rt.container(session).inspect()).State.Running).toBe(false);
    const admin = `admin:${userInfo().username}`;
    expect(await rt.quarantined(session)).toMatchObject({ by: admin, reason: 'red team' });
    const refused = await rt.ask(session, 'echo after-kill');
    expect(refused.text).toContain('quarantined');
    expect(refused.text).not.toContain('after-kill\n');
    const events = await rt.auditUntil(session, (e) => e.kind === 'sandbox.quarantine', 'the quarantine');
    expect(events.find((e) => e.kind === 'sandbox.quarantine')?.actor).toBe(admin);
    await rt.auditUntil(session, (e) => e.kind === 'sandbox.kill' && e.data.by === admin, 'the kill');
    const released = await sandbot('sandbox', 'release', conversation(session));
    expect(released).toMatchObject({ code: 0, stdout: `released ${conversation(session)}\n` });
    await rt.auditUntil(session, (e) => e.kind === 'sandbox.release' && e.actor === admin, 'the release');
    const again = await rt.ask(session, 'echo after-release');
    expect(again.text).toContain('after-release');
    await rt.row(
      '`sandbot sandbox kill` (own process) during a 60 s tool call, then `release`',
      `turn ended at once, container stopped, quarantined by ${admin}; refused until released; runs again after`,
      session,
    );
  }, 180_000);
});
