import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { SANDBOX_IMAGE } from '../../testkit/instance.js';
import { type Ipv6Engine, startIpv6Engine } from '../helpers/ipv6-engine.js';
import { UNDER_GVISOR } from '../helpers/stack.js';
import { expectNoSecretsLeaked, type Redteam, startRedteam } from './harness.js';

/**
 * Red team, IPv6 on the sandbox network of an engine that hands it out (issue #17): this machine's
 * engine gives containers no IPv6, so the file starts a second dockerd that does (--ipv6, a
 * fixed-cidr-v6 on its own bridge), shows that an ordinary container there gets a global IPv6 address
 * and reaches the gateway and a neighbour over it, then runs sandbot's worker against that engine
 * with a granted conversation under runc. The sandbox must have no IPv6 address but loopback and
 * reach nothing over IPv6; the network sandbot made must have IPv6 off. Skipped (with the reason) when
 * no second dockerd can start here, and under gVisor, whose sandboxes have no network device at all.
 */

const SESSION = 'v6-granted';
const NEIGHBOUR_PORT = 7007;

let engine: Ipv6Engine | undefined;
let skipReason: string | undefined;
let rt: Redteam | undefined;
let neighbour: { container: Dockerode.Container; address: string } | undefined;

/**
 * `python3 v6.py TARGET…`: a TCP connection to each IPv6 target (port 7007); prints
 * "TARGET connected", "TARGET refused" (a reset came back: reachable) or the error's name.
 */
const V6_PY = `import errno, socket, sys
for target in sys.argv[1:]:
    s = socket.socket(socket.AF_INET6)
    s.settimeout(2)
    try:
        s.connect((target, ${NEIGHBOUR_PORT}))
        print(target, 'connected')
    except ConnectionRefusedError:
        print(target, 'refused')
    except OSError as e:
        print(target, errno.errorcode.get(e.errno, type(e).__name__))
    finally:
        s.close()
`;

const inet6Count = `echo "inet6=$(awk '$6 != "lo"' /proc/net/if_inet6 2>/dev/null | wc -l)"; echo "global6=$(awk '$6 != "lo" && $4 == "00"' /proc/net/if_inet6 2>/dev/null | wc -l)"`;
const probeV6 = (targets: string[]) =>
  `cat > /tmp/v6.py <<'EOF'\n${V6_PY}EOF\npython3 /tmp/v6.py ${targets.join(' ')}`;

beforeAll(async () => {
  if (UNDER_GVISOR) {
    skipReason =
      'runc only: gVisor sandboxes have no network device (egress is tunnelled; egress-exact covers it)';
    return;
  }
  try {
    engine = await startIpv6Engine();
  } catch (error) {
    skipReason = `no second dockerd could start here: ${(error as Error).message}`;
    return;
  }
  const container = await engine.docker.createContainer({
    Image: SANDBOX_IMAGE,
    Cmd: [
      'node',
      '-e',
      `require('net').createServer((s) => s.end('neighbour\\n')).listen(${NEIGHBOUR_PORT}, '::')`,
    ],
  });
  await container.start();
  const address = (await container.inspect()).NetworkSettings.Networks.bridge?.GlobalIPv6Address ?? '';
  neighbour = { container, address };
  rt = await startRedteam('ipv6-engine', {
    settings: {
      DOCKER_HOST: engine.host,
      SANDBOX_LAYER: 'container',
      SANDBOT_NETWORK_RULES: `web:v6-*=api.example.test`,
      SANDBOT_EGRESS_PORT: '0',
    },
  });
}, 150_000);

afterAll(async () => {
  await rt?.stop();
  await neighbour?.container.remove({ force: true }).catch(() => undefined);
  const bridge = engine?.bridge;
  await engine?.stop();
  if (bridge) expect(existsSync(`/sys/class/net/${bridge}`), `bridge ${bridge} left behind`).toBe(false);
  if (skipReason) console.log(`\nRed-team attacks: ipv6-engine\nskipped: ${skipReason}`);
}, 90_000);

function ready(ctx: TestContext): { rt: Redteam; engine: Ipv6Engine; neighbour: string } {
  if (skipReason || !rt || !engine || !neighbour) ctx.skip(skipReason ?? 'the second engine is not up');
  return { rt: rt as Redteam, engine: engine as Ipv6Engine, neighbour: neighbour?.address ?? '' };
}

describe('red team: IPv6 on an engine that assigns it', () => {
  it('the engine gives an ordinary container a global IPv6 address that reaches the gateway and a neighbour', async (ctx) => {
    const { rt, engine, neighbour } = ready(ctx);
    expect(neighbour).toMatch(new RegExp(`^${engine.gateway6.replace(/1$/, '')}`));
    const probe = await engine.docker.createContainer({
      Image: SANDBOX_IMAGE,
      Cmd: ['bash', '-c', `${inet6Count}; ${probeV6([engine.gateway6, neighbour])}`],
    });
    await probe.start();
    await probe.wait();
    const out = (await probe.logs({ stdout: true, stderr: true })).toString('latin1');
    await probe.remove({ force: true });
    expect(out).toMatch(/global6=[1-9]/);
    expect(out).toContain(`${engine.gateway6} refused`);
    expect(out).toContain(`${neighbour} connected`);
    await rt.row(
      `control: an ordinary container on the second engine's default network (--ipv6, ${engine.cidr})`,
      `has a global IPv6 address; reaches the gateway ${engine.gateway6} (reset) and a neighbour ${neighbour} (connected)`,
      SESSION,
    );
  });

  it('gives a granted sandbox no IPv6: no address, no gateway, no neighbours, IPv6 off on its network', async (ctx) => {
    const { rt, engine, neighbour } = ready(ctx);
    const turn = await rt.ask(
      SESSION,
      [
        // Turning IPv6 back on from inside (a link-local address would follow) is the first try.
        'echo 0 2>/dev/null > /proc/sys/net/ipv6/conf/eth0/disable_ipv6 && echo enable6=done || echo enable6=refused',
        inet6Count,
        probeV6([engine.gateway6, neighbour, 'ff02::1%eth0', 'fe80::1%eth0']),
        // IPv4 control: the sandbox is on the egress network and reaches its proxy.
        'curl -s -o /dev/null -w "proxy=%{http_code}\\n" -x "$HTTP_PROXY" http://not-granted.example.test/',
        'echo v6-done',
      ].join('\n'),
    );
    expect(turn.text).toContain('v6-done');
    expect(turn.text).toContain('enable6=refused');
    expect(turn.text).toContain('inet6=0');
    expect(turn.text).toContain('proxy=403');
    for (const target of [engine.gateway6, neighbour, 'ff02::1%eth0', 'fe80::1%eth0']) {
      expect(turn.text).toMatch(new RegExp(`${target.replace(/[.%]/g, '\\$&')} E[A-Z]+`));
    }
    expect(turn.text).not.toMatch(/ (connected|refused)/);
    const network = await rt.docker.getNetwork(`${rt.instance}-egress`).inspect();
    expect(network.EnableIPv6).toBe(false);
    const sandbox = await rt.container(SESSION).inspect();
    const endpoint = sandbox.NetworkSettings.Networks[network.Name];
    expect(endpoint?.GlobalIPv6Address ?? '').toBe('');
    const bridge = network.Options?.['com.docker.network.bridge.name'] as string;
    expect(readFileSync(`/proc/sys/net/ipv6/conf/${bridge}/disable_ipv6`, 'utf8').trim()).toBe('1');
    const v6rules = execFileSync('ip6tables', ['-S']).toString();
    for (const rule of [`-A INPUT -i ${bridge} -j DROP`, `-A FORWARD -i ${bridge} -j DROP`]) {
      expect(v6rules).toContain(rule);
    }
    const errors = [...turn.text.matchAll(/^(\S+) (E[A-Z]+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
    await rt.row(
      'a granted runc sandbox on that engine: turn IPv6 on, IPv6 addresses, the v6 gateway, a v6 neighbour, ff02::1, fe80::1',
      `cannot turn IPv6 back on; no IPv6 address but loopback; every v6 connect fails (${errors.join(', ')}); the proxy answers over IPv4; network EnableIPv6=false, IPv6 off on ${bridge}, ip6tables DROP`,
      SESSION,
    );
  });

  it('leaks nothing', async (ctx) => {
    const { rt } = ready(ctx);
    await expectNoSecretsLeaked(rt);
  });
});
