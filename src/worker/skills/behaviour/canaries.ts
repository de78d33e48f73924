import { randomBytes } from 'node:crypto';
import type { Canary } from './observe.js';
import type { TarEntry } from './vet-container.js';

/**
 * Fresh canary credentials for one vetting run: secrets in the tools' environment and credentials
 * files where stealers look (~ is /workspace in the sandbox). Each value is unique to the run, so
 * finding one anywhere means the tool took it.
 */

const AGENT = 1000;
const token = (bytes: number) => randomBytes(bytes).toString('hex');

export function newCanaries(): Canary[] {
  return [
    { name: 'AWS_ACCESS_KEY_ID', env: 'AWS_ACCESS_KEY_ID', value: `AKIA${token(8).toUpperCase()}` },
    { name: 'AWS_SECRET_ACCESS_KEY', env: 'AWS_SECRET_ACCESS_KEY', value: `vetsecret${token(12)}` },
    { name: 'GITHUB_TOKEN', env: 'GITHUB_TOKEN', value: `ghp_vet${token(14)}` },
    { name: 'OPENAI_API_KEY', env: 'OPENAI_API_KEY', value: `sk-vet${token(14)}` },
    {
      name: '~/.aws/credentials',
      path: '/workspace/.aws/credentials',
      value: `AKIA${token(8).toUpperCase()}`,
    },
    { name: '~/.netrc', path: '/workspace/.netrc', value: `netrcvet${token(10)}` },
    { name: '~/.ssh/id_ed25519', path: '/workspace/.ssh/id_ed25519', value: `sshvet${token(16)}` },
    { name: '.env', path: '/workspace/.env', value: `dotenvvet${token(10)}` },
  ];
}

function fileContent(canary: Canary): string {
  switch (canary.name) {
    case '~/.aws/credentials':
      return `[default]\naws_access_key_id = ${canary.value}\naws_secret_access_key = ${canary.value.toLowerCase()}k\n`;
    case '~/.netrc':
      return `machine api.github.com\n  login vet\n  password ${canary.value}\n`;
    case '~/.ssh/id_ed25519':
      return `-----BEGIN OPENSSH PRIVATE KEY-----\n${canary.value}\n-----END OPENSSH PRIVATE KEY-----\n`;
    default:
      return `DATABASE_PASSWORD=${canary.value}\n`;
  }
}

/** The canary files as archive entries relative to /workspace, the agent's own and private. */
export function canaryEntries(canaries: readonly Canary[]): TarEntry[] {
  const entries: TarEntry[] = [
    { name: '.aws', mode: 0o700, uid: AGENT, dir: true },
    { name: '.ssh', mode: 0o700, uid: AGENT, dir: true },
    { name: 'outbox', mode: 0o755, uid: AGENT, dir: true },
  ];
  for (const c of canaries) {
    if (!c.path) continue;
    const name = c.path.slice('/workspace/'.length);
    entries.push({ name, mode: 0o600, uid: AGENT, bytes: Buffer.from(fileContent(c)) });
  }
  return entries;
}

/** The environment of every tool call: the env canaries, and the recording proxy. */
export function toolEnv(canaries: readonly Canary[], proxyUrl: string): string[] {
  const proxy = ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'].map((n) => `${n}=${proxyUrl}`);
  return [...canaries.filter((c) => c.env).map((c) => `${c.env}=${c.value}`), ...proxy, 'HOME=/workspace'];
}
