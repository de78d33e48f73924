import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The files of the engine's TLS: one CA signs the guest's server certificate and the worker's client one. */
export const TLS_FILES = {
  ca: 'ca.pem',
  caKey: 'ca-key.pem',
  serverCert: 'server-cert.pem',
  serverKey: 'server-key.pem',
  clientCert: 'client-cert.pem',
  clientKey: 'client-key.pem',
} as const;

export interface ClientTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

const DAYS = '3650';

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd: dir });
  } catch (error) {
    const e = error as { code?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT') throw new Error('the openssl command is missing: apt-get install -y openssl');
    throw new Error(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`);
  }
}

async function signed(dir: string, name: 'server' | 'client', extensions: string): Promise<void> {
  const ext = join(dir, `${name}.ext`);
  await writeFile(ext, extensions);
  const key = name === 'server' ? TLS_FILES.serverKey : TLS_FILES.clientKey;
  const cert = name === 'server' ? TLS_FILES.serverCert : TLS_FILES.clientCert;
  const subject = name === 'server' ? '/CN=sandbot-guest' : '/CN=sandbot-worker';
  const csr = `${name}.csr`;
  await openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  await openssl(dir, ['req', '-new', '-key', key, '-subj', subject, '-out', csr]);
  await openssl(dir, [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    TLS_FILES.ca,
    '-CAkey',
    TLS_FILES.caKey,
    '-set_serial',
    `0x${Date.now().toString(16)}${name === 'server' ? '1' : '2'}`,
    '-days',
    DAYS,
    '-extfile',
    ext,
    '-out',
    cert,
  ]);
  await rm(join(dir, csr));
  await rm(ext);
}

/**
 * Makes the CA and the server and client keys once (kept across builds: a new CA would orphan the
 * client keys of running workers). Keys are 0600 and the directory 0700, owned by whoever builds (root).
 */
export async function ensureTlsMaterial(dir: string): Promise<'created' | 'kept'> {
  if (Object.values(TLS_FILES).every((file) => existsSync(join(dir, file)))) return 'kept';
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const previous = process.umask(0o077);
  try {
    await openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', TLS_FILES.caKey]);
    await openssl(dir, [
      'req',
      '-x509',
      '-new',
      '-key',
      TLS_FILES.caKey,
      '-subj',
      '/CN=sandbot micro-VM CA',
      '-days',
      DAYS,
      '-out',
      TLS_FILES.ca,
    ]);
    await signed(
      dir,
      'server',
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n',
    );
    await signed(dir, 'client', 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n');
  } finally {
    process.umask(previous);
  }
  for (const file of [TLS_FILES.caKey, TLS_FILES.serverKey, TLS_FILES.clientKey]) {
    await chmod(join(dir, file), 0o600);
  }
  return 'created';
}

/** The worker's side of the TLS: what dockerode needs to reach the guest's engine. */
export async function readClientTls(dir: string): Promise<ClientTls> {
  try {
    const read = (file: string) => readFile(join(dir, file));
    const [ca, cert, key] = await Promise.all([
      read(TLS_FILES.ca),
      read(TLS_FILES.clientCert),
      read(TLS_FILES.clientKey),
    ]);
    return { ca, cert, key };
  } catch {
    throw new Error(`the micro-VM's TLS keys are missing in ${dir}: run \`sandbot vm build\``);
  }
}

/** readClientTls for synchronous callers (CLI commands that build their driver up front). */
export function readClientTlsSync(dir: string): ClientTls {
  try {
    const read = (file: string) => readFileSync(join(dir, file));
    return { ca: read(TLS_FILES.ca), cert: read(TLS_FILES.clientCert), key: read(TLS_FILES.clientKey) };
  } catch {
    throw new Error(`the micro-VM's TLS keys are missing in ${dir}: run \`sandbot vm build\``);
  }
}
