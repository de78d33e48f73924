/**
 * The two small programs the vetting sandbox runs (Python 3, which the sandbox image has), passed as
 * `python3 -c` text so nothing is written into the sandbox before the tools run.
 *
 * RECORDER runs as root (a user the tools cannot signal or write as): a decoy Docker socket at
 * /run/docker.sock (/var/run is a link to /run) and an HTTP proxy on 127.0.0.1:3128 that HTTP_PROXY
 * points the tools at. Both answer 403 and record every connection (with the first bytes sent) as a
 * JSON line in /run/sandbot-vet/record.jsonl, a directory only root may open.
 *
 * LAUNCHER runs each tool as the agent user under strace: the tool's input on stdin, its data memory
 * (and its processes' resident memory, watched) and wall time bounded, its output and the trace captured apart (the tool never holds the trace's
 * pipe), and one JSON document printed at the end.
 */

export const RECORD_DIR = '/run/sandbot-vet';
export const RECORD_LOG = `${RECORD_DIR}/record.jsonl`;
export const DECOY_SOCKET = '/run/docker.sock';
export const PROXY_PORT = 3128;

export const RECORDER = String.raw`
import json, os, socket, threading, time
os.makedirs('${RECORD_DIR}', mode=0o700, exist_ok=True)
os.chmod('${RECORD_DIR}', 0o700)
log = open('${RECORD_LOG}', 'a', buffering=1)
lock = threading.Lock()
def rec(**k):
    k['t'] = time.time()
    with lock:
        log.write(json.dumps(k) + '\n')
def head(c, limit):
    c.settimeout(1.5)
    data = b''
    try:
        while len(data) < limit:
            b = c.recv(4096)
            if not b:
                break
            data += b
            if b'\r\n\r\n' in data:
                break
    except Exception:
        pass
    return data[:limit]
def deny(c):
    try:
        c.sendall(b'HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
    except Exception:
        pass
    c.close()
def on_unix(c):
    rec(kind='unix', path='/var/run/docker.sock')
    data = head(c, 2048)
    if data:
        rec(kind='unix-data', path='/var/run/docker.sock', data=data.decode('utf-8', 'replace'))
    deny(c)
def on_proxy(c):
    data = head(c, 8192)
    text = data.decode('utf-8', 'replace')
    first = text.split('\r\n', 1)[0].split(' ')
    rec(kind='proxy', method=first[0] if first else '', target=first[1] if len(first) > 1 else '', data=text)
    deny(c)
def serve(s, handler):
    while True:
        c, _ = s.accept()
        threading.Thread(target=handler, args=(c,), daemon=True).start()
try:
    os.unlink('${DECOY_SOCKET}')
except FileNotFoundError:
    pass
u = socket.socket(socket.AF_UNIX)
u.bind('${DECOY_SOCKET}')
os.chmod('${DECOY_SOCKET}', 0o666)
u.listen(64)
p = socket.socket()
p.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
p.bind(('127.0.0.1', ${PROXY_PORT}))
p.listen(64)
threading.Thread(target=serve, args=(u, on_unix), daemon=True).start()
threading.Thread(target=serve, args=(p, on_proxy), daemon=True).start()
rec(kind='ready')
while True:
    time.sleep(3600)
`;

export const LAUNCHER = String.raw`
import json, os, resource, signal, subprocess, sys, threading, time
spec = json.loads(sys.argv[1])
def reader(stream, out, limit):
    total = 0
    while True:
        b = stream.read(65536)
        if not b:
            break
        if total < limit:
            out.append(b[:limit - total])
        total += len(b)
    out.append(b'' if total <= limit else b'\n[cut]')
def pre():
    os.setsid()
    m = spec['memKb'] * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (m, m))
peak, over = 0, False
def watch():
    # RLIMIT_DATA is not enforced everywhere (gVisor): the process group's resident memory is watched too,
    # against a looser bound (resident memory counts code and libraries as well as data).
    global peak, over
    while p.poll() is None:
        total = 0
        for d in os.listdir('/proc'):
            if not d.isdigit():
                continue
            try:
                with open('/proc/%s/stat' % d) as f:
                    if int(f.read().rsplit(')', 1)[1].split()[3]) != p.pid:
                        continue
                with open('/proc/%s/status' % d) as f:
                    total += next((int(l.split()[1]) for l in f if l.startswith('VmRSS:')), 0)
            except Exception:
                pass
        peak = max(peak, total)
        if total > spec['rssKb']:
            over = True
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except Exception:
                pass
            return
        time.sleep(0.05)
start = time.monotonic()
p = subprocess.Popen(spec['argv'], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     preexec_fn=pre, cwd='/workspace')
out, trace = [], []
threads = [threading.Thread(target=reader, args=(p.stdout, out, spec['outBytes']), daemon=True),
           threading.Thread(target=reader, args=(p.stderr, trace, spec['traceBytes']), daemon=True)]
threads.append(threading.Thread(target=watch, daemon=True))
for t in threads:
    t.start()
try:
    p.stdin.write(spec['input'].encode())
    p.stdin.close()
except Exception:
    pass
timed_out = False
try:
    code = p.wait(timeout=spec['timeoutS'])
except subprocess.TimeoutExpired:
    timed_out = True
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except Exception:
        pass
    code = p.wait()
ms = int((time.monotonic() - start) * 1000)
for t in threads:
    t.join(2)
rss = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({'exit': code, 'timedOut': timed_out, 'overMemory': over, 'ms': ms, 'maxRssKb': rss,
                  'output': b''.join(out).decode('utf-8', 'replace'),
                  'trace': b''.join(trace).decode('utf-8', 'replace')}))
`;

/** The syscalls strace records: processes, network, writes and file changes. */
export const TRACED_SYSCALLS = [
  'execve',
  'execveat',
  'connect',
  'bind',
  'sendto',
  'sendmsg',
  'sendmmsg',
  'write',
  'open',
  'openat',
  'creat',
  'rename',
  'renameat',
  'renameat2',
  'link',
  'linkat',
  'symlink',
  'symlinkat',
  'unlink',
  'unlinkat',
  'mkdir',
  'mkdirat',
  'truncate',
];

/** Where the vetting tools volume is mounted: strace and the libraries it was built against. */
export const VET_TOOLS_DIR = '/opt/sandbot-vet';

/**
 * The traced command line of one tool: strace (with its own dynamic loader and libraries, so it runs
 * whatever the image's C library) follows every process; a shell first moves the tool's stderr onto
 * its stdout, so the tool never holds strace's output.
 */
export function tracedCommand(tool: readonly string[], loader: string): string[] {
  return [
    `${VET_TOOLS_DIR}/lib/${loader}`,
    '--library-path',
    `${VET_TOOLS_DIR}/lib`,
    `${VET_TOOLS_DIR}/strace`,
    '-f',
    '-qq',
    '-x',
    '-s',
    '400',
    '-e',
    `trace=${TRACED_SYSCALLS.join(',')}`,
    '-e',
    'signal=none',
    '--',
    '/bin/sh',
    '-c',
    'exec 2>&1; exec "$@"',
    'sh',
    ...tool,
  ];
}
