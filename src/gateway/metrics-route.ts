import { sandbotMetrics } from '../shared/metrics.js';
import type { HttpServer } from './http-server.js';

/** `GET /metrics` in Prometheus' text format (unauthenticated, like the health routes: no secrets in it). */
export function registerMetricsRoute(app: HttpServer): void {
  app.get('/metrics', async (_request, reply) => {
    const { registry } = sandbotMetrics();
    return reply.type(registry.contentType).send(await registry.metrics());
  });
}
