import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import type Dockerode from 'dockerode';
import { forbiddenAddress } from '../../src/contracts/policy/network-policy.js';
import { closeServer } from '../../testkit/fakes/close-server.js';

/**
 * Things on the host that attacks aim at, each counting what reaches it: if a count is ever above
 * zero, an attack got out. Also the in-sandbox helper scripts the "model" writes first.
 */

/** A TCP listener that counts connections (a stand-in for any host service). */
export interface Trap {
  port: number;
  hits: number;
  close(): Promise<void>;
}

export async function tcpTrap(host: string, port = 0): Promise<Trap | undefined> {
  const trap = { port, hits: 0 } as Trap;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    trap.hits += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.end('trap\n', () => socket.destroy());
  });
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, host, () => resolve(true));
  });
  if (!ok) return undefined;
  trap.port = (server.address() as { port: number }).port;
  trap.close = () =>
    new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return trap;
}

/** A fake Docker API on the engine's customary TCP port: counts every request. */
export async function dockerApiTrap(): Promise<(Trap & { paths: string[] }) | undefined> {
  const trap = { port: 2375, hits: 0, paths: [] as string[] } as Trap & { paths: string[] };
  const server: HttpServer = createHttpServer((req, res) => {
    trap.hits += 1;
    trap.paths.push(`${req.method} ${req.url}`);
    res.setHeader('content-type', 'application/json');
    res.end('[]');
  });
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(2375, '0.0.0.0', () => resolve(true));
  });
  if (!ok) return undefined;
  trap.close = () => closeServer(server);
  return trap;
}

/** A UDP listener on port 53 of every host address: counts DNS queries that reach the host. */
export async function dnsTrap(): Promise<(Trap & { payloads: string[] }) | undefined> {
  const socket: UdpSocket = createSocket('udp4');
  const trap = { port: 53, hits: 0, payloads: [] as string[] } as Trap & { payloads: string[] };
  socket.on('message', (message) => {
    trap.hits += 1;
    trap.payloads.push(message.toString('latin1'));
  });
  const ok = await new Promise<boolean>((resolve) => {
    socket.once('error', () => resolve(false));
    socket.bind(53, '0.0.0.0', () => resolve(true));
  });
  if (!ok) return undefined;
  trap.close = () => new Promise((resolve) => socket.close(() => resolve()));
  return trap;
}

/**
 * The host's own addresses that the egress proxy's address rules would call public (e.g. its address
 * on the LAN or the internet), leaving out container bridges.
 */
export function hostPublicAddresses(): string[] {
  return Object.entries(networkInterfaces())
    .filter(([name]) => !/^(docker|br-|sbx-|veth|lo)/.test(name))
    .flatMap(([, addresses]) => addresses ?? [])
    .filter((a) => a.family === 'IPv4' && !a.internal && forbiddenAddress(a.address) === undefined)
    .map((a) => a.address);
}

/** Every IPv4 address of the host, bridges included. */
export function hostAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((addresses) => addresses ?? [])
    .filter((a) => a.family === 'IPv4')
    .map((a) => a.address);
}

/** A bridge network on a documentation range: its gateway address is the "outside" host. */
export async function outsideNetwork(docker: Dockerode, name: string, subnet: string, gateway: string) {
  // A run that died before its cleanup leaves its network holding the subnet: remove such leftovers.
  const prefix = name.replace(/[^-]*$/, '');
  for (const stale of await docker.listNetworks({ filters: { name: [prefix] } })) {
    if (stale.Name.startsWith(prefix) && stale.IPAM?.Config?.[0]?.Subnet === subnet) {
      await docker
        .getNetwork(stale.Id)
        .remove()
        .catch(() => undefined);
    }
  }
  await docker.createNetwork({ Name: name, IPAM: { Config: [{ Subnet: subnet, Gateway: gateway }] } });
  return {
    remove: () =>
      docker
        .getNetwork(name)
        .remove()
        .catch(() => undefined),
  };
}

/**
 * `python3 tunnel.py HOST PORT [PAYLOAD]`: opens a CONNECT tunnel through the sandbox's own proxy
 * (credentials from HTTP_PROXY), sends PAYLOAD (backslash escapes allowed) and prints what came back.
 */
export const TUNNEL_PY = `import base64, os, socket, sys
from urllib.parse import urlsplit, unquote
proxy = urlsplit(os.environ['HTTP_PROXY'])
host, port = sys.argv[1], int(sys.argv[2])
payload = sys.argv[3].encode().decode('unicode_escape').encode('latin1') if len(sys.argv) > 3 else b''
auth = base64.b64encode(f"{unquote(proxy.username)}:{unquote(proxy.password)}".encode()).decode()
s = socket.create_connection((proxy.hostname, proxy.port), timeout=3)
s.sendall(f"CONNECT {host}:{port} HTTP/1.1\\r\\nHost: {host}:{port}\\r\\nProxy-Authorization: Basic {auth}\\r\\n\\r\\n".encode() + payload)
data = b''
try:
    while len(data) < 400:
        chunk = s.recv(400)
        if not chunk:
            break
        data += chunk
except OSError:
    pass
print(f"tunnel {host}:{port} -> {data[:200]!r}")
`;

/** `python3 dnsq.py SERVER NAME`: sends one DNS query over UDP and prints whether anything answered. */
export const DNSQ_PY = `import socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
query = struct.pack('>HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0)
for label in name.split('.'):
    query += bytes([len(label)]) + label.encode()
query += b'\\x00' + struct.pack('>HH', 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
try:
    s.sendto(query, (server, 53))
    data, _ = s.recvfrom(512)
    print(f"dns {server}: answered {len(data)} bytes")
except OSError as error:
    print(f"dns {server}: failed ({error.__class__.__name__})")
`;

/** A bash function: `probe HOST PORT` tries for a second, then prints "HOST:PORT open" or "HOST:PORT blocked". */
export const PROBE_SH =
  'probe() { timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null && echo "$1:$2 open" || echo "$1:$2 blocked"; }';

/** Sets $gw and $pp to the proxy's address and port, from HTTP_PROXY. */
export const PROXY_VARS_SH =
  'gw=$(echo "$HTTP_PROXY" | sed -E "s#.*@([0-9.]+):.*#\\1#"); pp=$(echo "$HTTP_PROXY" | sed -E "s#.*:##")';

/**
 * `python3 hello.py HOST PORT SNI` ("-": none): opens a CONNECT tunnel through the sandbox's proxy and
 * sends a real TLS ClientHello naming SNI (domain fronting when SNI is not HOST); prints the proxy's
 * status line and what came back through the tunnel.
 */
export const HELLO_PY = `import base64, os, socket, ssl, sys
from urllib.parse import urlsplit, unquote
proxy = urlsplit(os.environ['HTTP_PROXY'])
host, port, sni = sys.argv[1], int(sys.argv[2]), sys.argv[3]
auth = base64.b64encode(f"{unquote(proxy.username)}:{unquote(proxy.password)}".encode()).decode()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
out = ssl.MemoryBIO()
tls = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname=None if sni == '-' else sni)
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = out.read()
s = socket.create_connection((proxy.hostname, proxy.port), timeout=5)
s.sendall(f"CONNECT {host}:{port} HTTP/1.1\\r\\nHost: {host}:{port}\\r\\nProxy-Authorization: Basic {auth}\\r\\n\\r\\n".encode())
head = s.recv(400)
status = head.split(b'\\r\\n')[0]
data = b''
if b' 200 ' in status:
    s.sendall(hello)
    try:
        data = s.recv(400)
    except OSError as error:
        data = repr(error).encode()
print(f"hello {host}:{port} sni={sni} -> {status!r} then {data[:120]!r}")
`;

/**
 * `python3 flood.py HOST PORT N`: opens N CONNECT tunnels through the proxy at once and keeps them open;
 * prints how many were established, refused (403) or cut before any answer.
 */
export const FLOOD_PY = `import base64, os, socket, sys
from urllib.parse import urlsplit, unquote
proxy = urlsplit(os.environ['HTTP_PROXY'])
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
auth = base64.b64encode(f"{unquote(proxy.username)}:{unquote(proxy.password)}".encode()).decode()
request = f"CONNECT {host}:{port} HTTP/1.1\\r\\nHost: {host}:{port}\\r\\nProxy-Authorization: Basic {auth}\\r\\n\\r\\n".encode()
held, counts = [], {'established': 0, 'refused': 0, 'cut': 0}
for _ in range(n):
    try:
        s = socket.create_connection((proxy.hostname, proxy.port), timeout=5)
        s.sendall(request)
        held.append(s)
    except OSError:
        counts['cut'] += 1
for s in held:
    try:
        status = s.recv(200).split(b'\\r\\n')[0]
    except OSError:
        status = b''
    key = 'established' if b' 200 ' in status else 'refused' if b' 403 ' in status else 'cut'
    counts[key] += 1
print('flood ' + ' '.join(f"{k}={v}" for k, v in counts.items()))
`;
