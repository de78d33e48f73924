import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GVISOR_MEMORY_OVERHEAD_MB } from '../../sandbox/host/layers/layer.js';
import { UNDER_GVISOR } from '../helpers/stack.js';
import { expectNoSecretsLeaked, type Redteam, startRedteam } from './harness.js';
import { plantVictim, type Victim } from './victim.js';

/**
 * Red team, resource exhaustion: fork and memory bombs, CPU burn, full disks, huge outputs, processes
 * left behind, runaway agent loops. Each must end its step with a clear message, leave the
 * conversation usable, and leave the host and the other conversations untouched.
 */

const TOOL_TIMEOUT = 5;
const OUTPUT_BYTES = 16_384;
const MAX_MODEL_CALLS = 6;
const TURN_TIMEOUT = 15;
let rt: Redteam;
let victim: Victim;

beforeAll(async () => {
  rt = await startRedteam('resources', {
    settings: {
      SANDBOX_TOOL_TIMEOUT_SECONDS: String(TOOL_TIMEOUT),
      SANDBOX_TOOL_OUTPUT_BYTES: String(OUTPUT_BYTES),
      SANDBOX_MEMORY_MB: '256',
      SANDBOX_PIDS: '128',
      SANDBOX_TMP_MB: '64',
      // Size-capped /workspace and /session (loop-mounted ext4 images), as the README recommends.
      SANDBOX_WORKSPACE_MB: '64',
      SANDBOX_SESSION_MB: '16',
      SANDBOX_DISK_DIR: join(tmpdir(), `sandbot-rt-disk-${process.pid}`),
      SANDBOX_TURN_TIMEOUT_SECONDS: String(TURN_TIMEOUT),
      SANDBOT_MAX_MODEL_CALLS_PER_TURN: String(MAX_MODEL_CALLS),
    },
  });
  victim = await plantVictim(rt, 'res-victim');
});

afterAll(async () => {
  await rt?.stop();
});

/** Processes now alive in a conversation's sandbox, counted from inside it. */
const PROCESS_COUNT = 'echo "procs=$(ls -d /proc/[0-9]* | wc -l)"';

describe('red team: resource exhaustion', () => {
  it('a fork bomb stops at the pids limit, is killed with its tool call, and the sandbox recovers', async () => {
    const session = 'res-fork';
    const bomb = await rt.ask(session, 'bomb() { bomb | bomb & }; bomb; sleep 30');
    expect(bomb.kind, bomb.text).toBe('reply');
    expect(bomb.text).toContain(`timed out after ${TOOL_TIMEOUT}s`);
    const after = await rt.ask(
      session,
      `cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; echo "nproc=$(ulimit -u)"; ${PROCESS_COUNT}; echo fork-after`,
    );
    expect(after.text).toContain('fork-after');
    // Under gVisor the agent's limit is RLIMIT_NPROC inside gVisor's kernel (its /sys has no cgroups);
    // the host's pids cgroup, sized for gVisor's own tasks, only backs it up.
    expect(after.text).toMatch(UNDER_GVISOR ? /^nproc=128$/m : /^128$/m);
    const procs = Number(/procs=(\d+)/.exec(after.text)?.[1]);
    expect(procs).toBeLessThan(10);
    await victim.expectUnchanged();
    await victim.expectStillAnswers();
    await rt.auditedCall(session, 'bomb()');
    await rt.row(
      'fork bomb',
      `capped at ${UNDER_GVISOR ? '128 processes (RLIMIT_NPROC in gVisor)' : 'pids.max 128'}; killed at the ${TOOL_TIMEOUT} s tool timeout; ${procs} processes after`,
      session,
    );
  });

  it(
    UNDER_GVISOR
      ? 'a memory bomb gets the whole gVisor sandbox OOM-killed at its limit; the next message starts it again'
      : 'a memory bomb is OOM-killed inside the sandbox’s 256 MiB; the runtime survives',
    async () => {
      const session = 'res-mem';
      const turn = await rt.ask(
        session,
        [
          'python3 -c "x = []\nwhile True: x.append(bytearray(32 * 1024 * 1024))"',
          'echo "bomb-exit=$?"',
          'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null',
        ].join('; '),
      );
      if (UNDER_GVISOR) {
        // gVisor's kernel is one host process: at the limit the host's OOM killer takes the whole
        // sandbox, not only the bomb. The turn ends in an error; the next message starts it again.
        expect(turn.kind).toBe('error');
        const info = await rt.container(session).inspect();
        expect(info.State.OOMKilled).toBe(true);
        expect(info.HostConfig.Memory).toBe((256 + GVISOR_MEMORY_OVERHEAD_MB) * 1024 * 1024);
      } else {
        expect(turn.kind).toBe('reply');
        expect(turn.text).toContain('bomb-exit=137');
        expect(turn.text).toMatch(/^268435456$/m);
      }
      const after = await rt.ask(session, 'echo mem-after');
      expect(after.text).toContain('mem-after');
      await victim.expectUnchanged();
      await rt.auditedCall(session, 'bytearray');
      await rt.row(
        'memory bomb (python allocating without end)',
        UNDER_GVISOR
          ? `the whole sandbox OOM-killed at its ${256 + GVISOR_MEMORY_OVERHEAD_MB} MiB limit (256 + gVisor's own); turn failed: "${turn.text.split(' (')[0]}"; next message started it again`
          : 'OOM-killed (exit 137) at the 256 MiB limit; runtime and conversation go on',
        session,
      );
    },
  );

  it('a CPU burn is bounded to its quota and its tool timeout while another conversation answers', async () => {
    const session = 'res-cpu';
    const burning = rt.ask(
      session,
      "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max; while :; do :; done",
    );
    // While it burns, another conversation is served.
    await victim.expectStillAnswers();
    const turn = await burning;
    expect(turn.text).toContain(`timed out after ${TOOL_TIMEOUT}s`);
    // From the host: one CPU's quota. Inside, gVisor shows no cgroup files, runc shows the quota.
    expect((await rt.container(session).inspect()).HostConfig.NanoCpus).toBe(1e9);
    if (!UNDER_GVISOR) expect(turn.text).toMatch(/^100000$/m);
    await rt.auditedCall(session, 'while :; do :; done');
    await rt.row(
      'CPU burn (busy loop)',
      `1 CPU quota; killed at the ${TOOL_TIMEOUT} s tool timeout; other conversation answered meanwhile`,
      session,
    );
  });

  it('filling /tmp stops at its tmpfs size', async () => {
    const session = 'res-tmp';
    const turn = await rt.ask(
      session,
      'dd if=/dev/zero of=/tmp/fill bs=1M count=200 2>&1 | grep -E "No space|copied"; df -m /tmp | tail -1; rm -f /tmp/fill; echo tmp-done',
    );
    expect(turn.text).toContain('tmp-done');
    expect(turn.text).toContain('No space left on device');
    expect(turn.text).toMatch(/\b64\b/);
    await victim.expectUnchanged();
    await rt.auditedCall(session, 'of=/tmp/fill');
    await rt.row('fill /tmp', 'stopped at the 64 MiB tmpfs: No space left on device', session);
  });

  it('filling /workspace stops at its size cap; the turn ends cleanly and the host is untouched', async () => {
    const session = 'res-disk';
    const turn = await rt.ask(
      session,
      'dd if=/dev/zero of=/workspace/big bs=1M count=200 2>&1 | grep -E "No space|copied"; df -m /workspace | tail -1; echo disk-done',
      120_000,
    );
    expect(turn.kind).toBe('reply');
    expect(turn.text).toContain('disk-done');
    expect(turn.text).toContain('No space left on device');
    const cleanup = await rt.ask(session, 'rm -f /workspace/big; echo cleaned', 120_000);
    expect(cleanup.text).toContain('cleaned');
    await victim.expectUnchanged();
    await rt.auditedCall(session, 'of=/workspace/big');
    await rt.row(
      'fill /workspace (200 MB into a 64 MiB cap)',
      'stopped at the cap: No space left on device; turn ended cleanly',
      session,
    );
  }, 240_000);

  it('a 1 GB tool output is capped before it reaches the worker and the model', async () => {
    const session = 'res-output';
    const turn = await rt.ask(session, 'yes | head -c 1G; echo');
    expect(turn.kind).toBe('reply');
    expect(turn.text.length).toBeLessThan(OUTPUT_BYTES + 1000);
    const toolMessages = rt.ollama
      .chatRequests()
      .flatMap((r) => r.messages)
      .filter((m) => m.role === 'tool' && m.content.startsWith('y\ny\n', m.content.indexOf('\n') + 1));
    expect(toolMessages.length).toBeGreaterThan(0);
    for (const m of toolMessages)
      expect(Buffer.byteLength(m.content)).toBeLessThanOrEqual(OUTPUT_BYTES + 200);
    const call = await rt.auditedCall(session, 'head -c 1G');
    expect(call.data.truncated).toBe(true);
    await rt.row(
      '1 GB tool output (`yes | head -c 1G`)',
      `capped to ${OUTPUT_BYTES} bytes (truncated); turn ended`,
      session,
    );
  });

  it('processes started in the background do not outlive the turn', async () => {
    const session = 'res-bg';
    const start = await rt.ask(
      session,
      [
        'nohup sleep 1001 > /dev/null 2>&1 &',
        'setsid sleep 1002 > /dev/null 2>&1 < /dev/null &',
        "(setsid sh -c 'sleep 1003' > /dev/null 2>&1 < /dev/null &)",
        "python3 -c \"import os\nif os.fork() == 0:\n  os.setsid()\n  if os.fork() == 0:\n    os.execvp('sleep', ['sleep', '1004'])\"",
        'echo bg-started',
      ].join('\n'),
    );
    expect(start.text).toContain('bg-started');
    const next = await rt.ask(
      session,
      'for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline; echo; done 2>/dev/null | grep "^sleep 100" | sort; echo bg-checked',
    );
    expect(next.text).toContain('bg-checked');
    const survivors = next.text.match(/^sleep 100\d/gm) ?? [];
    await rt.auditedCall(session, 'bg-checked');
    await rt.row(
      'background processes that outlive the turn (nohup, setsid, double fork)',
      survivors.length === 0
        ? 'all gone at the next turn'
        : `SURVIVED into the next turn: ${survivors.join(', ')}`,
      session,
    );
    expect(survivors).toEqual([]);
  });

  it('a runaway agent loop stops at the model-call limit', async () => {
    const session = 'res-loop';
    const turn = await rt.ask(session, '@loop echo again');
    expect(turn.kind).toBe('error');
    expect(turn.text).toContain(`limit of ${MAX_MODEL_CALLS} model calls`);
    await rt.auditUntil(
      session,
      (e) => e.kind === 'limit.hit' && e.data.limit === 'model_calls_per_turn',
      'limit.hit',
    );
    const after = await rt.ask(session, 'echo loop-after');
    expect(after.text).toContain('loop-after');
    await rt.row(
      'runaway agent loop (tool call after tool call)',
      `stopped at ${MAX_MODEL_CALLS} model calls; conversation goes on`,
      session,
    );
  });

  it('a turn that never ends stops at the turn’s wall time', async () => {
    const session = 'res-slow';
    const turn = await rt.ask(session, '@loop sleep 4', (TURN_TIMEOUT + 20) * 1000);
    expect(turn.kind).toBe('error');
    expect(turn.text).toContain(`longer than ${TURN_TIMEOUT} s`);
    await rt.auditUntil(
      session,
      (e) => e.kind === 'limit.hit' && e.data.limit === 'turn_timeout',
      'limit.hit',
    );
    const after = await rt.ask(session, 'echo slow-after');
    expect(after.text).toContain('slow-after');
    await rt.row(
      'a turn that never ends (slow tools, forever)',
      `stopped at the ${TURN_TIMEOUT} s turn limit; conversation goes on`,
      session,
    );
  });

  it('leaves the other conversation untouched and leaks nothing', async () => {
    await victim.expectUnchanged();
    await victim.expectStillAnswers();
    await expectNoSecretsLeaked(rt);
  });
});
