import { sandbotMetrics } from '../shared/metrics.js';
import { type DoorSettings, guardDoor, probesNeedToken } from './http-auth.js';
import type { HttpServer } from './http-server.js';

/**
 * `GET /metrics` in Prometheus' text format: behind the Host guard, and the API token where the bind
 * is not loopback (queue depths and conversation counts are nobody else's business).
 */
export function registerMetricsRoute(app: HttpServer, settings: DoorSettings): void {
  const door = { tokenRequired: probesNeedToken(settings) };
  app.get(
    '/metrics',
    { onRequest: (request, reply) => guardDoor(request, reply, settings, door) },
    async (_request, reply) => {
      const { registry } = sandbotMetrics();
      return reply.type(registry.contentType).send(await registry.metrics());
    },
  );
}
