import type Dockerode from 'dockerode';
import type { Redis } from 'ioredis';
import type { Config } from '../contracts/config/schema.js';
import { type LayerPublisher, publishWorkerLayer, type WorkerLayer } from '../shared/stores/layer-report.js';
import { modelBrokerFor } from './broker/model-broker.js';
import { type HostPostureSettings, probeHostPosture } from './posture-probe.js';

/** Each check's time limit, as `/readyz` had when the gateway ran them itself. */
const CHECK_TIMEOUT_MS = 2000;
const FIRST_REPORT_WAIT_MS = 5000;

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/**
 * Reports into Redis, until stopped, what `/readyz` on any gateway shows of this worker: its sandbox
 * layer, whether its sandboxes' engine answers, the `docker` (engine at DOCKER_HOST) and `ollama`
 * checks, its `disk` caps (always ok; uncapped shows as a WEAKNESS), and the host's part of the security
 * posture. Resolves once the first report is written.
 */
export async function reportWorkerHealth(options: {
  redis: Redis;
  config: Pick<
    Config,
    | 'SANDBOT_INSTANCE'
    | 'DOCKER_HOST'
    | 'SANDBOT_MODEL_PROVIDER'
    | 'OLLAMA_HOST'
    | 'SANDBOT_MODEL_URL'
    | 'SANDBOT_MODEL_API_KEY'
  > &
    HostPostureSettings;
  workerId: string;
  layer: Omit<WorkerLayer, 'at' | 'engine' | 'checks'>;
  hostEngine: Dockerode;
  sandboxEngine: Dockerode;
  /** The start-up verdict on the sandboxes' disk caps (disk-cap.ts): reported as is, never failing. */
  disk?: { detail: string };
}): Promise<LayerPublisher> {
  const { config } = options;
  const broker = modelBrokerFor(config, CHECK_TIMEOUT_MS);
  // Once, at start: the host's strongest layer and the engine's version and user namespaces.
  const host = await probeHostPosture(config, options.hostEngine, CHECK_TIMEOUT_MS);
  const posture = {
    ...(host.layer?.strongest ? { strongest: host.layer.strongest } : {}),
    ...(host.engine ? { engine: { ...host.engine, version: host.engine.version.slice(0, 100) } } : {}),
  };
  const publisher = publishWorkerLayer(
    options.redis,
    config.SANDBOT_INSTANCE,
    options.workerId,
    { ...options.layer, posture },
    {
      engine: () => options.sandboxEngine.ping(),
      checks: {
        docker: async (signal) => {
          // dockerode's types omit it, but ping() takes { abortSignal } and cancels the request with it.
          await (options.hostEngine.ping as (opts: { abortSignal: AbortSignal }) => Promise<unknown>).call(
            options.hostEngine,
            { abortSignal: signal },
          );
          return config.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
        },
        ...(options.disk ? { disk: async () => options.disk?.detail } : {}),
        // Named `ollama` for either provider: the model server check, as monitors already read it.
        ollama: async () => {
          const server = await broker.checkServer();
          if (!server.ok) throw new Error(server.error.message);
          return broker.describeServer(server.version);
        },
      },
    },
  );
  // Bounded: a worker whose Redis is slow to answer still starts (the next report follows).
  await Promise.race([publisher.first, delay(FIRST_REPORT_WAIT_MS)]);
  return publisher;
}
