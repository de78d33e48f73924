import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DockerSandboxDriver } from '../../sandbox/host/driver/docker-driver.js';
import type { SandboxNetwork } from '../../sandbox/host/driver/docker-spec.js';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import type { SandboxSession } from '../../sandbox/host/driver/types.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { EGRESS_MAX_STREAMS } from '../../src/contracts/protocol/egress.js';
import { cleanInstance } from '../../testkit/instance.js';
import { testInstance } from '../../testkit/redis.js';
import { runOnSession } from '../../testkit/session-run.js';
import { testConfig } from '../helpers/stack.js';

/**
 * The egress tunnel's transport on the real engine (the policy behind it is egress.test.ts, which npm
 * test also runs under gVisor, where grants use this tunnel): a tunnelled sandbox has no network
 * device, connections to its loopback port arrive at whatever the worker connects them to (here a
 * server that echoes, hashes and sends), bytes arrive whole and in order both ways, the sandbox's open
 * streams are capped, and no tunnel frame ever reaches the session's own listeners.
 */

const config = testConfig(testInstance('tunnel'));
const conversation = webConversationId('tunnel');
let driver: DockerSandboxDriver;
let server: Server;
let port = 0;
const accepted: Socket[] = [];

/** The sha256 of what the server sent on its last `get`. */
let sentSha = '';

beforeAll(async () => {
  // The first line says what to do: `echo` (echo everything), `sha` (read to the end, then answer the
  // sha256 and the byte count), `get <n>` (send n random bytes, then end).
  server = createServer({ allowHalfOpen: true }, (socket) => {
    accepted.push(socket);
    let head = Buffer.alloc(0);
    const onHead = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const nl = head.indexOf(10);
      if (nl < 0) return;
      socket.off('data', onHead);
      const [verb, arg] = head.subarray(0, nl).toString().split(' ');
      const rest = head.subarray(nl + 1);
      if (verb === 'echo') {
        socket.write(rest);
        socket.pipe(socket);
      } else if (verb === 'sha') {
        const hash = createHash('sha256').update(rest);
        let count = rest.length;
        socket.on('data', (more: Buffer) => {
          hash.update(more);
          count += more.length;
        });
        socket.on('end', () => socket.end(`${hash.digest('hex')} ${count}\n`));
      } else if (verb === 'get') {
        const bytes = randomBytes(Number(arg));
        sentSha = createHash('sha256').update(bytes).digest('hex');
        socket.end(bytes);
      }
    };
    socket.on('data', onHead);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
  driver = sandboxDriverFromConfig(config);
});

/** Python in the sandbox: one connection to the tunnel port, per test step. */
const PY = `
import hashlib, socket, sys
def conn():
    return socket.create_connection(("127.0.0.1", 3128), timeout=30)
def read_all(s):
    out = b""
    while True:
        got = s.recv(65536)
        if not got: return out
        out += got
step = sys.argv[1]
if step == "ping":
    s = conn(); s.sendall(b"echo\\nping-through-tunnel\\n"); print(s.recv(100).decode().strip())
elif step == "up":
    data = open("/dev/urandom", "rb").read(3145728)
    s = conn(); s.sendall(b"sha\\n" + data); s.shutdown(socket.SHUT_WR)
    print("local", hashlib.sha256(data).hexdigest(), len(data)); print("far", read_all(s).decode().strip())
elif step == "down":
    s = conn(); s.sendall(b"get 3145728\\n"); data = read_all(s)
    print("down", hashlib.sha256(data).hexdigest(), len(data))
elif step == "big":
    s = conn(); s.sendall(b"get 33554432\\n"); h, n = hashlib.sha256(), 0
    while True:
        got = s.recv(65536)
        if not got: break
        h.update(got); n += len(got)
    print("big", h.hexdigest(), n)
elif step == "many":
    held, answered = [], 0
    for i in range(40):
        try:
            s = socket.create_connection(("127.0.0.1", 3128), timeout=5); s.sendall(b"echo\\nhi\\n"); held.append(s)
        except OSError:
            pass
    for s in held:
        try:
            answered += s.recv(10).startswith(b"hi")
        except OSError:
            pass
    print("answered=%d" % answered)
`;

afterAll(async () => {
  server?.close();
  await cleanInstance(config);
});

const tunnel: SandboxNetwork = {
  via: 'tunnel',
  proxyUrl: 'http://user:secret@127.0.0.1:3128',
  connect: () => connect(port, '127.0.0.1'),
};

const run = (session: SandboxSession, command: string) => runOnSession(session, command);

/** The errors of the bad lines the session's listeners get (invalid egress frames among them). */
function badLines(session: SandboxSession): string[] {
  const bad: string[] = [];
  session.onMessage((line) => {
    if (!line.ok) bad.push(line.error);
  });
  return bad;
}

describe('the egress tunnel', () => {
  it('carries a connection from the sandbox’s loopback to the worker’s side, both ways, whole', async () => {
    const session = await driver.open(conversation, { network: tunnel });
    try {
      const { output, seen } = await run(
        session,
        [
          'cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " " | tr "\\n" " "; echo',
          'echo "proxy=$HTTP_PROXY"',
          `cat > /tmp/t.py <<'PY'${PY}PY`,
          // A short exchange; 3 MiB up (then a half-close: the answer still comes); 3 MiB down.
          'python3 /tmp/t.py ping; python3 /tmp/t.py up; python3 /tmp/t.py down',
        ].join('\n'),
      );
      expect(output).toMatch(/^lo $/m);
      expect(output).toContain('proxy=http://user:secret@127.0.0.1:3128');
      expect(output).toContain('ping-through-tunnel');
      const local = /^local ([0-9a-f]{64}) 3145728$/m.exec(output)?.[1];
      expect(local).toBeDefined();
      expect(output).toContain(`far ${local} 3145728`);
      expect(output).toContain(`down ${sentSha} 3145728`);
      expect(seen.filter((t) => t.startsWith('egress_'))).toEqual([]);
      expect(seen.filter((t) => t !== 'ready')).toEqual(['tool_started', 'tool_finished', 'turn_done']);
    } finally {
      await session.close();
    }
  });

  it(`caps a sandbox at ${EGRESS_MAX_STREAMS} open connections, and ends them with the lease`, async () => {
    const before = accepted.length;
    const session = await driver.open(conversation, { network: tunnel });
    const bad = badLines(session);
    try {
      // 40 connections held open at once: the ones over the cap are closed at once (EOF or reset).
      const { output } = await run(session, `cat > /tmp/t.py <<'PY'${PY}PY\npython3 /tmp/t.py many`);
      expect(output).toContain(`answered=${EGRESS_MAX_STREAMS}`);
      // What the declined connections sent before their close reached the sandbox is no abuse.
      expect(bad).toEqual([]);
    } finally {
      await session.close();
    }
    // Every stream the worker connected ended with the lease (the run reaped the sleepers too).
    await new Promise((r) => setTimeout(r, 500));
    const opened = accepted.slice(before);
    expect(opened.length).toBe(EGRESS_MAX_STREAMS);
    expect(opened.every((s) => s.destroyed || s.readableEnded)).toBe(true);
  });

  it('counts no frame of an honest 32 MiB download as invalid (none reaches the turn as a bad line)', async () => {
    const session = await driver.open(conversation, { network: tunnel });
    const bad = badLines(session);
    try {
      const { output } = await run(session, `cat > /tmp/t.py <<'PY'${PY}PY\npython3 /tmp/t.py big`);
      expect(output).toContain(`big ${sentSha} 33554432`);
      expect(bad).toEqual([]);
    } finally {
      await session.close();
    }
  });

  it('gives a sandbox opened without the tunnel no listener on that port', async () => {
    const session = await driver.open(webConversationId('tunnel-none'));
    try {
      const { output } = await run(
        session,
        'timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/3128" 2>/dev/null && echo open || echo refused',
      );
      expect(output).toMatch(/^refused$/m);
      expect(output).not.toMatch(/^open$/m);
    } finally {
      await session.close();
    }
  });
});
