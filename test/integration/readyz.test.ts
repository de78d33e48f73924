import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChatAdapters } from '../../adapters/index.js';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import type { Config } from '../../src/contracts/config/schema.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import { startGateway } from '../../src/gateway/start-gateway.js';
import { createRedis } from '../../src/shared/redis/connection.js';
import { reportWorkerHealth } from '../../src/worker/health-report.js';
import { startWorker } from '../../src/worker/start-worker.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { testConfig } from '../helpers/stack.js';

/**
 * `/readyz` of a real gateway: green with Redis, the engine, Ollama and the web chat up; red (503),
 * naming the culprit, when one of them cannot be reached. The real services keep running: the gateway
 * (or the worker, which checks the engine and Ollama and reports to the gateway through Redis) is pointed
 * at a closed port instead, or (Redis) at a relay that is cut while the gateway runs.
 */

const dir = mkdtempSync(path.join(tmpdir(), 'sandbot-readyz-'));
const instance = testInstance('readyz');
let ollama: FakeOllama;
let closedPort: number;

type Report = { status: string; checks: Record<string, { ok: boolean; detail?: string }> };

beforeAll(async () => {
  ollama = await startFakeOllama();
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closedPort = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
});

afterAll(async () => {
  await ollama?.close();
  await cleanInstance(testConfig(instance));
  rmSync(dir, { recursive: true, force: true });
});

/** A real worker, or (`reportOnly`, for an engine it could not start on) only its health report. */
async function startReportingWorker(config: Config, reportOnly: boolean): Promise<() => Promise<void>> {
  if (!reportOnly) {
    const worker = await startWorker(config, createLogger(config));
    return () => worker.stop();
  }
  const redis = createRedis(config.SANDBOT_REDIS_URL, 'readyz-report');
  const engine = createDocker(config.DOCKER_HOST);
  const layer = { layer: 'container' as const, detail: 'not checked (a report only)' };
  const report = await reportWorkerHealth({
    redis,
    config,
    workerId: 'readyz-report',
    layer,
    hostEngine: engine,
    sandboxEngine: engine,
  });
  return async () => {
    await report.stop();
    redis.disconnect();
  };
}

async function withGateway<T>(
  overrides: Record<string, string>,
  use: (url: string) => Promise<T>,
  worker: { overrides?: Record<string, string>; reportOnly?: boolean } = {},
): Promise<T> {
  const config = testConfig(instance, { SANDBOT_AUDIT_DIR: dir, OLLAMA_HOST: ollama.url, ...overrides });
  const workerConfig = testConfig(instance, {
    SANDBOT_AUDIT_DIR: dir,
    OLLAMA_HOST: ollama.url,
    ...(worker.overrides ?? overrides),
  });
  const stopWorker = await startReportingWorker(workerConfig, worker.reportOnly ?? false);
  try {
    const gateway = await startGateway(config, createLogger(config), createChatAdapters);
    try {
      return await use(gateway.url);
    } finally {
      await gateway.stop();
    }
  } finally {
    await stopWorker();
  }
}

async function ready(url: string) {
  const response = await fetch(`${url}/readyz`);
  return { status: response.status, body: (await response.json()) as Report };
}

/** A TCP relay to the real Redis that can be cut (listener closed, connections dropped) and restored. */
async function redisRelay() {
  // The real Redis, its credentials (setup's password) carried over to the relay's URL.
  const target = new URL(REDIS_URL);
  const sockets = new Set<Socket>();
  const serve = (): Server =>
    createServer((client) => {
      const upstream = connect(Number(target.port || 6379), target.hostname);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
  let server = serve();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const drop = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    });
  const relayed = new URL(REDIS_URL);
  relayed.hostname = '127.0.0.1';
  relayed.port = String(port);
  return {
    url: relayed.toString(),
    cut: drop,
    async restore() {
      server = serve();
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    },
    close: drop,
  };
}

describe('GET /readyz', () => {
  it('is ready when Redis, the engine, Ollama and the chat connections answer', async () => {
    const { status, body } = await withGateway({}, ready);
    expect(status).toBe(200);
    expect(body).toMatchObject({
      status: 'ready',
      checks: {
        redis: { ok: true },
        docker: { ok: true },
        ollama: { ok: true, detail: expect.stringMatching(/^Ollama \d/) },
        web: { ok: true },
        disk: { ok: true, detail: expect.stringMatching(/^each \/workspace capped at 2048 MiB/) },
      },
      // The posture report for the console: never counted against readiness.
      security: { high: expect.any(Number), findings: expect.any(Array) },
    });
  });

  it('shows uncapped sandbox disks (SANDBOX_WORKSPACE_MB=0) as a weakness, still ready', async () => {
    const { status, body } = await withGateway({ SANDBOX_WORKSPACE_MB: '0' }, ready);
    expect(status).toBe(200);
    expect(body.checks.disk).toMatchObject({
      ok: true,
      detail: expect.stringMatching(/^WEAKNESS: \/workspace and \/session are uncapped/),
    });
  });

  it('turns red when Redis becomes unreachable, and green again when it is back', async () => {
    const relay = await redisRelay();
    try {
      // The worker reports through Redis directly: only the gateway's connection is cut.
      const direct = { overrides: {} };
      await withGateway(
        { SANDBOT_REDIS_URL: relay.url },
        async (url) => {
          expect((await ready(url)).status).toBe(200);
          await relay.cut();
          const { status, body } = await ready(url);
          expect(status).toBe(503);
          expect(body.checks.redis?.ok).toBe(false);
          expect(body.checks.docker?.ok).toBe(true);
          // Back before the gateway stops: its queue workers cannot shut down without Redis.
          await relay.restore();
          let back = await ready(url);
          for (let i = 0; i < 50 && back.status !== 200; i++) {
            await new Promise((resolve) => setTimeout(resolve, 200));
            back = await ready(url);
          }
          expect(back.body.checks.redis).toEqual({ ok: true });
        },
        direct,
      );
    } finally {
      await relay.close();
    }
  });

  it('turns red when the container engine is unreachable', async () => {
    // A worker cannot start without its engine: its report alone, as one whose engine went away sends.
    const { status, body } = await withGateway({ DOCKER_HOST: `tcp://127.0.0.1:${closedPort}` }, ready, {
      reportOnly: true,
    });
    expect(status).toBe(503);
    expect(body.checks.docker).toMatchObject({ ok: false, detail: expect.stringContaining('ECONNREFUSED') });
    expect(body.checks.redis?.ok).toBe(true);
  });

  it('turns red when Ollama is unreachable', async () => {
    const { status, body } = await withGateway({ OLLAMA_HOST: `http://127.0.0.1:${closedPort}` }, ready);
    expect(status).toBe(503);
    expect(body.checks.ollama).toMatchObject({
      ok: false,
      detail: expect.stringContaining('cannot reach Ollama'),
    });
  });
});
