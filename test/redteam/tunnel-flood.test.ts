import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OutsideHost, startOutsideHost } from '../../testkit/outside-host.js';
import { UNDER_GVISOR } from '../helpers/stack.js';
import { expectNoSecretsLeaked, printTable, type Redteam, startRedteam, token } from './harness.js';

/**
 * Red team, the egress tunnel's backpressure (issue #17): under gVisor a granted sandbox reaches the
 * proxy through frames on its own protocol stream. The agent starts a big download through its
 * HTTP_PROXY, tries to freeze the runtime (SIGSTOP) so nothing reads the sandbox's stdin any more, and
 * to write forged `egress_ack` lines into the runtime's stdout, which once made the worker read the
 * proxy without bound. Since #19 the runtime's real uid is root's (sandbox/runtime/privilege.ts): both
 * are refused. The worker's memory (this process hosts it) must stay flat whatever the download does,
 * and the conversation go on. (Forged acks from a runtime taken over anyway are invalid egress frames
 * that trip the protocol-abuse tripwire: test/unit/tunnel-session.test.ts.) Under runc a granted sandbox reaches the proxy over the
 * bridge network, not the tunnel: there the file records that and runs nothing.
 * The outside host is on 192.52.193.0/24 (AMT relay anycast; the other attack files hold the
 * documentation ranges and 192.88.99.0/24).
 */

const OUTSIDE = '192.52.193.10';
const SESSION = 'net-tunnel';
const TURN_TIMEOUT = 15;
const DOWNLOAD_BYTES = 256 * 1024 * 1024;
const BOUND_MIB = 64;
const ACK_SECONDS = 6;

let rt: Redteam;
let outside: OutsideHost;

const FIND_RUNTIME =
  'for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = node ] && grep -q runtime/main.js $p/cmdline 2>/dev/null && rtpid=$(basename $p); done';

/** Reads stdin to its end, writing how many bytes came so far to /tmp/got after every MiB. */
const COUNT_PY = `import sys
n, mark = 0, 0
while True:
    chunk = sys.stdin.buffer.read1(1 << 16)
    if not chunk:
        break
    n += len(chunk)
    if n - mark >= 1 << 20:
        mark = n
        open('/tmp/got', 'w').write(str(n))
open('/tmp/got', 'w').write(str(n))`;

/**
 * Starts the download, lets it flow, freezes the runtime, then writes forged acknowledgements of the
 * whole window for the first streams into the runtime's stdout for ACK_SECONDS; what it saw goes to
 * frozen.txt in the workspace, for the next turn to show, and the count of forged acks so far to
 * acks.txt every 100 (the tripwire kills the sandbox before the loop is over).
 */
const ATTACK = [
  FIND_RUNTIME,
  `curl -s -x "$HTTP_PROXY" http://big.example.test:8080/big/${DOWNLOAD_BYTES} | python3 -c "${COUNT_PY}" &`,
  'sleep 2',
  'echo "kill: $(kill -STOP $rtpid 2>&1)" > frozen.txt',
  'echo "runtime $rtpid $(grep State /proc/$rtpid/status)" >> frozen.txt',
  'echo "got at freeze=$(cat /tmp/got)" >> frozen.txt',
  `n=0; SECONDS=0; : 2>> frozen.txt > /proc/$rtpid/fd/1 || echo "stdout refused" >> frozen.txt; while [ $SECONDS -lt ${ACK_SECONDS} ]; do for s in 1 2 3 4; do printf '{"type":"egress_ack","stream":%d,"bytes":262144}\\n' $s; done; n=$((n+4)); [ $((n % 100)) = 0 ] && echo "forged acks=$n" > acks.txt; done > /proc/$rtpid/fd/1`,
  'echo "forged acks=$n" >> frozen.txt',
  'echo "got after acks=$(cat /tmp/got)" >> frozen.txt',
].join('\n');

beforeAll(async () => {
  if (!UNDER_GVISOR) return;
  rt = await startRedteam('tunnel-flood', {
    lookup: async (host) => {
      if (host !== 'big.example.test') throw new Error('ENOTFOUND');
      return [{ address: OUTSIDE, family: 4 }];
    },
    settings: {
      SANDBOT_NETWORK_RULES: 'web:net-*=big.example.test:8080',
      SANDBOT_EGRESS_PORT: '0',
      // The proxy's own per-request cap is not what is under test: let the whole download through.
      SANDBOT_EGRESS_MAX_BYTES: String(4 * DOWNLOAD_BYTES),
      SANDBOX_TURN_TIMEOUT_SECONDS: String(TURN_TIMEOUT),
      // The forged lines are egress frames, which the turn never sees; leave other tripwires be.
      SANDBOT_TRIPWIRE_EGRESS_REFUSALS: '1000',
    },
  });
  outside = await startOutsideHost(rt.docker, {
    name: `sbx-rt-tunnel-${token()}`,
    subnet: '192.52.193.0/24',
    address: OUTSIDE,
  });
}, 150_000);

afterAll(async () => {
  await rt?.stop();
  await outside?.stop();
}, 60_000);

/** Polls for up to 10 s until `find` finds something. */
async function until<T>(find: () => T | undefined): Promise<T | undefined> {
  for (let i = 0; i < 50; i++) {
    const found = find();
    if (found !== undefined) return found;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return undefined;
}

/** Samples this process's memory (it hosts the worker) until stopped; the most growth seen, in MiB. */
function watchMemory() {
  const base = process.memoryUsage();
  const most = { rss: 0, heap: 0 };
  const timer = setInterval(() => {
    const now = process.memoryUsage();
    most.rss = Math.max(most.rss, (now.rss - base.rss) / 2 ** 20);
    const held = now.heapUsed + now.external - base.heapUsed - base.external;
    most.heap = Math.max(most.heap, held / 2 ** 20);
  }, 100);
  return {
    stop() {
      clearInterval(timer);
      return most;
    },
  };
}

describe.runIf(UNDER_GVISOR)('red team: the egress tunnel against a freeze and forged acks', () => {
  it('freezing the runtime and forging egress_ack lines are refused; the worker’s memory stays flat', async () => {
    const memory = watchMemory();
    const began = performance.now();
    const turn = await rt.ask(SESSION, ATTACK, (TURN_TIMEOUT + 30) * 1000);
    const seconds = (performance.now() - began) / 1000;
    const most = memory.stop();
    // Both steps were refused: the runtime ran on, and its stdout took no forged line.
    const next = await rt.ask(SESSION, 'cat frozen.txt; echo next-turn');
    expect(next.text).toContain('next-turn');
    expect(next.text).toMatch(/kill: .*Operation not permitted/);
    expect(next.text).toMatch(/runtime \d+ State:\s+[RS]/);
    expect(next.text).toContain('stdout refused');
    expect(next.text).toContain('forged acks=0');
    expect(turn.text).not.toContain('invalid egress frames');
    // The download was under way; the worker's memory stayed within bounds all along.
    const atFreeze = Number(/got at freeze=(\d+)/.exec(next.text)?.[1] ?? 0) / 2 ** 20;
    const download = await until(() => rt.egressOf(SESSION).find((r) => r.host === 'big.example.test'));
    const moved = (download?.bytesIn ?? 0) / 2 ** 20;
    await rt.row(
      `download ${DOWNLOAD_BYTES / 2 ** 20} MiB through the tunnel, SIGSTOP the runtime, forge egress_ack lines into its stdout for up to ${ACK_SECONDS} s`,
      `refused: the runtime's real uid is root's (no SIGSTOP, no write to its stdout); worker memory grew at most ${most.rss.toFixed(1)} MiB RSS, ${most.heap.toFixed(1)} MiB heap+external (bound ${BOUND_MIB}); curl had ${atFreeze.toFixed(1)} MiB at the attempt, the proxy read ${moved.toFixed(1)} MiB in all; turn ended after ${seconds.toFixed(1)} s (${turn.kind}); next turn answered`,
      SESSION,
    );
    expect(atFreeze).toBeGreaterThan(0);
    expect(seconds).toBeLessThan(TURN_TIMEOUT + 20);
    expect(most.rss).toBeLessThan(BOUND_MIB);
    expect(most.heap).toBeLessThan(BOUND_MIB);
  });

  it('leaks nothing', async () => {
    await expectNoSecretsLeaked(rt);
  });
});

describe.skipIf(UNDER_GVISOR)('red team: the egress tunnel (gVisor only)', () => {
  it('is not attacked under runc: its sandboxes reach the proxy over the bridge network', (ctx) => {
    printTable('tunnel-flood', [
      {
        attack: 'freeze the runtime mid-download and forge egress_ack lines (egress tunnel)',
        outcome:
          'not run under runc: a runc sandbox reaches the proxy over the bridge network, not the tunnel (runs with SANDBOT_TEST_LAYER=gvisor)',
        recorded: '-',
      },
    ]);
    ctx.skip('runc sandboxes have no egress tunnel: run with SANDBOT_TEST_LAYER=gvisor');
  });
});
