import type Docker from 'dockerode';
import { Redis } from 'ioredis';
import { judgeDiskCaps } from '../../../sandbox/host/driver/disk-cap.js';
import type { Config } from '../../contracts/config/schema.js';
import type { DoctorCheck } from '../../contracts/doctor/check.js';
import { modelBrokerFor } from '../../worker/broker/model-broker.js';
import { shownUrl } from '../cli-redis.js';
import { checkAuditDatabase, DATABASE_CHECK } from './database.js';
import { checkSandboxLayer, LAYER_TIMEOUT_MS } from './layer.js';
import { checkOpenAIServerAndModel, MODEL_SERVER_CHECK } from './model-server.js';
import { checkSkillStore, SKILLS_CHECK } from './skills.js';

/**
 * `sandbot doctor`: is everything sandbot needs there and answering? Each check has its own time
 * limit, so the doctor never hangs on a dead endpoint; checks that depend on another (the image on the
 * engine, the model on Ollama) are reported as not checked when that one fails.
 */

export interface DoctorOptions {
  config: Config;
  docker: Docker;
  /** Defaults to config.SANDBOT_REDIS_URL. */
  redisUrl?: string;
  /** Time limit of each check. */
  timeoutMs?: number;
}

export const CHECK_NAMES = {
  redis: 'Redis',
  /** Only with SANDBOT_DATABASE_URL. */
  database: DATABASE_CHECK,
  /** Where skills are kept: the folder, or the database. */
  skills: SKILLS_CHECK,
  docker: 'Docker engine',
  image: 'Sandbox image',
  layer: 'Sandbox layer',
  disk: 'Disk caps',
  ollama: 'Ollama',
  /** In place of `ollama` with SANDBOT_MODEL_PROVIDER=openai. */
  modelServer: MODEL_SERVER_CHECK,
  model: 'Model',
} as const;

export async function runDoctor(options: DoctorOptions): Promise<DoctorCheck[]> {
  const { config, docker } = options;
  const timeoutMs = options.timeoutMs ?? 5000;
  const redisUrl = options.redisUrl ?? config.SANDBOT_REDIS_URL;
  const databaseUrl = config.SANDBOT_DATABASE_URL;
  const [redis, database, skills, engine, ollama] = await Promise.all([
    bounded(CHECK_NAMES.redis, timeoutMs, () => checkRedis(redisUrl, timeoutMs), {
      detail: `Redis at ${shownUrl(redisUrl)} did not answer within ${timeoutMs / 1000} s`,
      fix: REDIS_FIX,
    }),
    databaseUrl
      ? bounded(CHECK_NAMES.database, timeoutMs, () =>
          checkAuditDatabase(databaseUrl, config.SANDBOT_INSTANCE),
        )
      : undefined,
    bounded(CHECK_NAMES.skills, timeoutMs, () => checkSkillStore(config)),
    checkEngineAndImage(docker, config, timeoutMs),
    config.SANDBOT_MODEL_PROVIDER === 'openai'
      ? checkOpenAIServerAndModel(config, timeoutMs, { model: CHECK_NAMES.model })
      : checkOllamaAndModel(config, timeoutMs),
  ]);
  return [redis, ...(database ? [database] : []), skills, ...engine, checkDiskCaps(config), ...ollama];
}

/** Whether a worker run as this user would cap every sandbox's disk; uncapped (0) is a weakness. */
export function checkDiskCaps(config: Config, uid = process.getuid?.()): DoctorCheck {
  const verdict = judgeDiskCaps(config, uid);
  if (!verdict.ok) return { name: CHECK_NAMES.disk, ok: false, detail: verdict.reason, fix: verdict.fix };
  if (!verdict.capped) return { name: CHECK_NAMES.disk, ok: false, detail: verdict.detail, fix: verdict.fix };
  return { name: CHECK_NAMES.disk, ok: true, detail: verdict.detail };
}

const REDIS_FIX = 'start Redis (e.g. `redis-server`), or set SANDBOT_REDIS_URL to a reachable server';

async function checkRedis(url: string, timeoutMs: number): Promise<DoctorCheck> {
  const shown = shownUrl(url);
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  // connect() only says "Connection is closed."; the socket's own error (refused, unknown host) comes here.
  let socketError: unknown;
  redis.on('error', (error) => {
    socketError ??= error;
  });
  try {
    await redis.connect();
    const pong = await redis.ping();
    const version = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1];
    return {
      name: CHECK_NAMES.redis,
      ok: pong === 'PONG',
      detail: `${pong} from ${shown}${version ? ` (Redis ${version})` : ''}`,
    };
  } catch (error) {
    const detail = `cannot reach Redis at ${shown}: ${describeError(socketError ?? error)}`;
    if (/NOAUTH|WRONGPASS/.test(`${String(error)} ${String(socketError)}`)) {
      return { name: CHECK_NAMES.redis, ok: false, detail, fix: 'put the password in SANDBOT_REDIS_URL' };
    }
    return { name: CHECK_NAMES.redis, ok: false, detail, fix: REDIS_FIX };
  } finally {
    redis.disconnect();
  }
}

async function checkEngineAndImage(
  docker: Docker,
  config: Config,
  timeoutMs: number,
): Promise<DoctorCheck[]> {
  const endpoint = config.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
  const engine = await bounded(
    CHECK_NAMES.docker,
    timeoutMs,
    async (signal) => {
      try {
        // dockerode's types omit it, but ping() takes { abortSignal } and cancels the request with it.
        await (docker.ping as (opts: { abortSignal: AbortSignal }) => Promise<unknown>).call(docker, {
          abortSignal: signal,
        });
        const v = await docker.version();
        return {
          name: CHECK_NAMES.docker,
          ok: true,
          detail: `${v.Version} (API ${v.ApiVersion}, ${v.Os}/${v.Arch}) at ${endpoint}`,
        };
      } catch (error) {
        return {
          name: CHECK_NAMES.docker,
          ok: false,
          detail: `cannot reach the container engine at ${endpoint}: ${describeError(error)}`,
          fix: engineFix(error),
        };
      }
    },
    {
      detail: `the container engine at ${endpoint} did not answer within ${timeoutMs / 1000} s`,
      fix: engineFix(undefined),
    },
  );
  if (!engine.ok) {
    const skipped = (name: string) => ({ name, ok: false, detail: 'not checked: the engine is unreachable' });
    return [engine, skipped(CHECK_NAMES.image), skipped(CHECK_NAMES.layer)];
  }
  const image = await bounded(CHECK_NAMES.image, timeoutMs, () => checkImage(docker, config.SANDBOX_IMAGE));
  if (!image.ok) {
    return [
      engine,
      image,
      {
        name: CHECK_NAMES.layer,
        ok: false,
        detail: `not checked: the sandbox image is missing (SANDBOX_LAYER=${config.SANDBOX_LAYER})`,
      },
    ];
  }
  // Starting a container (under gVisor: its kernel) takes longer than a ping.
  const layerMs = Math.max(timeoutMs, LAYER_TIMEOUT_MS);
  return [
    engine,
    image,
    await bounded(CHECK_NAMES.layer, layerMs, () =>
      checkSandboxLayer(CHECK_NAMES.layer, docker, config, layerMs),
    ),
  ];
}

async function checkImage(docker: Docker, image: string): Promise<DoctorCheck> {
  try {
    const found = await docker.getImage(image).inspect();
    const megabytes = Math.round((found.Size ?? 0) / 1_000_000);
    return {
      name: CHECK_NAMES.image,
      ok: true,
      detail: `${image} (${found.Id.slice(7, 19)}, ${megabytes} MB)`,
    };
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) {
      return {
        name: CHECK_NAMES.image,
        ok: false,
        detail: `${image} is not in the engine`,
        fix: 'run `sandbot image build`, or set SANDBOX_IMAGE to an image the engine has',
      };
    }
    return { name: CHECK_NAMES.image, ok: false, detail: `cannot inspect ${image}: ${describeError(error)}` };
  }
}

async function checkOllamaAndModel(config: Config, timeoutMs: number): Promise<DoctorCheck[]> {
  const broker = modelBrokerFor(config, timeoutMs);
  const server = await broker.checkServer();
  if (!server.ok) {
    const reachableFix =
      server.error.kind === 'unreachable'
        ? 'install Ollama (https://ollama.com/download) and start it (`ollama serve`), or set OLLAMA_HOST to where it runs'
        : `check that OLLAMA_HOST (${config.OLLAMA_HOST}) is the URL of an Ollama server that answers`;
    return [
      { name: CHECK_NAMES.ollama, ok: false, detail: server.error.message, fix: reachableFix },
      {
        name: CHECK_NAMES.model,
        ok: false,
        detail: `not checked: Ollama is unreachable (${config.SANDBOT_MODEL})`,
      },
    ];
  }
  const ollama = {
    name: CHECK_NAMES.ollama,
    ok: true,
    detail: `Ollama ${server.version} at ${config.OLLAMA_HOST}`,
  };
  const model = config.SANDBOT_MODEL;
  const found = await broker.checkModel(model);
  if (found.ok) return [ollama, { name: CHECK_NAMES.model, ok: true, detail: `${model} is pulled` }];
  if (found.error.kind !== 'model_missing') {
    return [ollama, { name: CHECK_NAMES.model, ok: false, detail: found.error.message }];
  }
  const others =
    found.pulled && found.pulled.length > 0
      ? `, or set SANDBOT_MODEL to one of: ${found.pulled.join(', ')}`
      : '';
  return [
    ollama,
    {
      name: CHECK_NAMES.model,
      ok: false,
      detail: found.error.message,
      fix: `run \`ollama pull ${model}\`${others}`,
    },
  ];
}

/** Runs one check under a time limit; a check that throws or hangs is reported, never propagated. */
async function bounded(
  name: string,
  timeoutMs: number,
  run: (signal: AbortSignal) => Promise<DoctorCheck>,
  onTimeout?: { detail: string; fix?: string },
): Promise<DoctorCheck> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<DoctorCheck>((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve({ name, ok: false, detail: `no answer within ${timeoutMs / 1000} s`, ...onTimeout });
    }, timeoutMs);
  });
  const checked = run(controller.signal).catch(
    (error: unknown): DoctorCheck => ({ name, ok: false, detail: describeError(error) }),
  );
  try {
    return await Promise.race([checked, late]);
  } finally {
    clearTimeout(timer);
  }
}

const SOCKET_WORDS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOENT: 'no such socket',
  EACCES: 'permission denied',
  ENOTFOUND: 'host name not found',
  ETIMEDOUT: 'connection timed out',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
};

export function describeError(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === 'string' && SOCKET_WORDS[code]) return SOCKET_WORDS[code];
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s+/g, ' ').trim() || 'unknown error';
}

function engineFix(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  if (code === 'EACCES') return 'run sandbot as a user allowed to use the engine (e.g. in the docker group)';
  return 'start the container engine (e.g. `dockerd`), or set DOCKER_HOST to a reachable one';
}
