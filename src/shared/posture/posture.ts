import { openToAll } from '../../contracts/config/allowlists.js';
import type { Config } from '../../contracts/config/schema.js';
import { databaseFindings } from './database-posture.js';

/**
 * The security posture: each setting weaker than its default or than the strongest this host runs,
 * with its fix. Pure: `sandbot doctor --security` gathers the facts (engine, Redis, layers) and
 * `/readyz` passes what the gateway knows; both judge with postureFindings.
 */

export type Severity = 'high' | 'medium' | 'low';

export interface Finding {
  severity: Severity;
  /** The setting (or part of the host) to change. */
  setting: string;
  what: string;
  fix: string;
}

export type LayerName = 'container' | 'gvisor' | 'microvm';

export interface PostureFacts {
  /** The layer sandboxes run under, the strongest this host could run, and how grants reach the proxy. */
  layer?: { inForce: LayerName; strongest?: LayerName; egress?: 'bridge' | 'tunnel' };
  /** The engine at DOCKER_HOST: its version and whether it maps container root away (userns or rootless). */
  engine?: { version: string; userns: boolean };
  /** Whether Redis answered a command without credentials; its `bind` when CONFIG GET was allowed. */
  redis?: { open: boolean; bind?: readonly string[] };
}

export type PostureSettings = Pick<
  Config,
  | 'SANDBOX_LAYER'
  | 'SANDBOX_WORKSPACE_MB'
  | 'SANDBOT_REDIS_URL'
  | 'SANDBOT_DATABASE_URL'
  | 'DOCKER_HOST'
  | 'SANDBOT_HTTP_HOST'
  | 'SANDBOT_API_TOKEN'
  | 'SANDBOT_WEB_CHAT'
  | 'SANDBOT_NETWORK_RULES'
  | 'SLACK_BOT_TOKEN'
  | 'SLACK_ALLOW_ALL'
  | 'DISCORD_ALLOW_ALL'
  | 'SLACK_ALLOWED_TEAMS'
  | 'SLACK_ALLOWED_CHANNELS'
  | 'SLACK_ALLOWED_USERS'
  | 'DISCORD_TOKEN'
  | 'DISCORD_ALLOWED_GUILDS'
  | 'DISCORD_ALLOWED_CHANNELS'
  | 'DISCORD_ALLOWED_ROLES'
>;

const ORDER: Record<Severity, number> = { high: 0, medium: 1, low: 2 };

/** Every weakened setting, the most severe first. */
export function postureFindings(config: PostureSettings, facts: PostureFacts = {}): Finding[] {
  const found = [
    ...layerFindings(config, facts.layer),
    ...diskFindings(config),
    ...whoFindings(config),
    ...redisFindings(config, facts.redis),
    ...databaseFindings(config),
    ...engineFindings(config, facts.engine, facts.layer),
    ...grantFindings(config),
  ];
  return bySeverity(found);
}

/** The most severe first (stable: same severity keeps its order). */
export const bySeverity = (findings: readonly Finding[]) =>
  [...findings].sort((a, b) => ORDER[a.severity] - ORDER[b.severity]);

export const hasHigh = (findings: readonly Finding[]) => findings.some((f) => f.severity === 'high');

const RANK: Record<LayerName, number> = { container: 0, gvisor: 1, microvm: 2 };
const LAYER_WORDS: Record<LayerName, string> = {
  container: 'plain containers (the host’s kernel shared)',
  gvisor: 'gVisor',
  microvm: 'the micro-VM',
};

export function layerFindings(config: PostureSettings, layer: PostureFacts['layer']): Finding[] {
  const inForce = layer?.inForce ?? (config.SANDBOX_LAYER === 'auto' ? undefined : config.SANDBOX_LAYER);
  if (!inForce) return [];
  const strongest = layer?.strongest;
  const setting = `SANDBOX_LAYER=${config.SANDBOX_LAYER}`;
  if (strongest && RANK[strongest] > RANK[inForce]) {
    return [
      {
        severity: inForce === 'container' ? 'high' : 'low',
        setting,
        what: `sandboxes run under ${LAYER_WORDS[inForce]} though this host runs ${LAYER_WORDS[strongest]}`,
        fix: `set SANDBOX_LAYER=auto (or ${strongest})`,
      },
    ];
  }
  if (inForce !== 'container') return [];
  return [
    {
      severity: 'medium',
      setting,
      what: `sandboxes run under ${LAYER_WORDS.container}: a kernel bug is a way out`,
      fix: 'install gVisor (`bash scripts/setup.sh` registers runsc) or use a host with hardware virtualization, and set SANDBOX_LAYER=auto',
    },
  ];
}

export function diskFindings(config: PostureSettings): Finding[] {
  if (config.SANDBOX_WORKSPACE_MB !== 0) return [];
  return [
    {
      severity: 'medium',
      setting: 'SANDBOX_WORKSPACE_MB=0',
      what: 'workspaces are uncapped: one sandbox can fill the engine host’s disk',
      fix: 'unset SANDBOX_WORKSPACE_MB (2048 MiB each) and run the worker as root',
    },
  ];
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/i;
export const isLoopback = (host: string) => LOOPBACK.test(host.replace(/^-/, ''));

/** Who can start agents: the chat platforms' allowlists and the web API. */
export function whoFindings(config: PostureSettings): Finding[] {
  const found: Finding[] = [];
  // Empty allowlists start only with *_ALLOW_ALL=true (the gateway refuses otherwise): then it is open.
  if (openToAll(config, 'slack') && config.SLACK_ALLOW_ALL) {
    found.push({
      severity: 'medium',
      setting: 'SLACK_ALLOWED_USERS / SLACK_ALLOWED_CHANNELS',
      what: 'anyone who can message the Slack bot (guests of shared channels too) can run agents',
      fix: 'list who may use it in SLACK_ALLOWED_USERS or SLACK_ALLOWED_CHANNELS (and SLACK_ALLOWED_TEAMS)',
    });
  }
  if (openToAll(config, 'discord') && config.DISCORD_ALLOW_ALL) {
    found.push({
      severity: 'high',
      setting: 'DISCORD_ALLOWED_GUILDS / DISCORD_ALLOWED_ROLES',
      what: 'anyone in any server the Discord bot is added to can run agents',
      fix: 'list the servers in DISCORD_ALLOWED_GUILDS and who may use it in DISCORD_ALLOWED_ROLES',
    });
  }
  return [...found, ...apiFindings(config)];
}

/** Mirrors adapters/web/enabled.ts (shared code may not import adapters). */
const webChatServed = (config: PostureSettings) =>
  config.SANDBOT_WEB_CHAT === 'on' ||
  (config.SANDBOT_WEB_CHAT === 'auto' && !config.SLACK_BOT_TOKEN && !config.DISCORD_TOKEN);

function apiFindings(config: PostureSettings): Finding[] {
  const host = config.SANDBOT_HTTP_HOST;
  const local = isLoopback(host);
  if (config.SANDBOT_API_TOKEN) {
    if (local) return [];
    return [
      {
        severity: 'low',
        setting: `SANDBOT_HTTP_HOST=${host}`,
        what: 'the API token crosses the network in clear (the gateway serves plain HTTP)',
        fix: 'put a TLS proxy in front, or bind 127.0.0.1',
      },
    ];
  }
  if (!webChatServed(config)) return [];
  return [
    {
      severity: local ? 'medium' : 'high',
      setting: 'SANDBOT_API_TOKEN',
      what: local
        ? 'the web API has no token: any local user or process can run agents'
        : `the web API has no token and listens on ${host}: anyone who reaches it can run agents`,
      fix: 'set SANDBOT_API_TOKEN to a long random string (e.g. `openssl rand -hex 32`)',
    },
  ];
}

function redisUrl(config: PostureSettings): URL | undefined {
  try {
    return new URL(config.SANDBOT_REDIS_URL);
  } catch {
    return undefined;
  }
}

export function redisFindings(config: PostureSettings, redis: PostureFacts['redis']): Finding[] {
  const url = redisUrl(config);
  const found: Finding[] = [];
  if (redis?.open) {
    found.push({
      severity: 'high',
      setting: 'SANDBOT_REDIS_URL',
      what: 'Redis accepts commands without a password: whoever reaches it can read conversations and queue turns',
      fix: 'start Redis with a password (`bash scripts/setup.sh` does when it starts Redis: an ACL user in .env), or set one (requirepass / ACL) and put it in SANDBOT_REDIS_URL',
    });
  }
  const wide = (redis?.bind ?? []).filter((address) => !isLoopback(address));
  const remote = url && !isLoopback(url.hostname) ? url.hostname : undefined;
  if (wide.length > 0 || remote) {
    const where = remote ? `Redis is at ${remote}` : `Redis listens on ${wide.join(' ')}`;
    const clear = url?.protocol !== 'rediss:';
    if (redis?.open || clear) {
      found.push({
        severity: redis?.open ? 'high' : 'medium',
        setting: remote ? 'SANDBOT_REDIS_URL' : 'Redis bind',
        what: `${where}, beyond loopback${clear ? ', without TLS' : ''}`,
        fix: 'bind Redis to 127.0.0.1 where gateway and workers share a host; else use rediss:// (TLS) and a firewall',
      });
    }
  }
  return found;
}

/** The first Moby releases of each line with the fix for CVE-2024-29018 (DNS out of internal networks). */
const DNS_FIXED: ReadonlyArray<[major: number, minor: number, patch: number]> = [
  [23, 0, 11],
  [25, 0, 5],
  [26, 0, 0],
];

export function engineDnsExfiltration(version: string): boolean | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!m) return undefined;
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (major >= 26) return false;
  const line = DNS_FIXED.find(([a, b]) => a === major && b === minor);
  return !line || patch < line[2];
}

export function engineFindings(
  config: PostureSettings,
  engine: PostureFacts['engine'],
  layer: PostureFacts['layer'],
): Finding[] {
  const found: Finding[] = [];
  const endpoint = config.DOCKER_HOST;
  if (endpoint && /^(tcp|http):/i.test(endpoint)) {
    const host = safeHost(endpoint);
    found.push({
      severity: host && isLoopback(host) ? 'medium' : 'high',
      setting: `DOCKER_HOST=${endpoint}`,
      what: 'the engine’s API (root on its host) is reached over plain TCP, without TLS or client certificates',
      fix: 'use the local socket (unset DOCKER_HOST) or a unix:// socket forwarded over SSH',
    });
  }
  if (!engine) return found;
  const shared = (layer?.inForce ?? config.SANDBOX_LAYER) === 'container';
  if (!engine.userns) {
    found.push({
      severity: shared ? 'medium' : 'low',
      setting: 'engine user namespaces',
      what: 'the engine runs without user namespaces: root in a sandbox that escapes is root on the host',
      fix: 'set "userns-remap": "default" in /etc/docker/daemon.json (or run the engine rootless)',
    });
  }
  if (engineDnsExfiltration(engine.version)) {
    found.push({
      severity: layer?.egress === 'tunnel' ? 'low' : 'high',
      setting: `engine ${engine.version}`,
      what: 'this engine forwards DNS from internal networks (CVE-2024-29018): a granted sandbox can leak data through lookups',
      fix: 'upgrade the engine to 26.0.0 or later (or 25.0.5, 23.0.11); a distribution package may carry the fix, see its changelog',
    });
  }
  return found;
}

function safeHost(endpoint: string): string | undefined {
  try {
    return new URL(endpoint).hostname;
  } catch {
    return undefined;
  }
}

/** Wildcard grants: each covers every host under a domain, not one host. */
export function grantFindings(config: PostureSettings): Finding[] {
  return config.SANDBOT_NETWORK_RULES.flatMap((rule) =>
    rule.grants
      .filter((grant) => grant.startsWith('*.'))
      .map(
        (grant): Finding => ({
          severity: 'medium',
          setting: 'SANDBOT_NETWORK_RULES',
          what: `"${rule.prefix}" is granted ${grant}: every host under ${grant.slice(2).split(':')[0]}, not one`,
          fix: 'grant the exact host names the agents need',
        }),
      ),
  );
}
