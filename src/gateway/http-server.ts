import { createRequire } from 'node:module';
import Fastify, {
  type FastifyError,
  type FastifyReply,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import type { Config } from '../contracts/config/schema.js';
import type { Logger } from '../contracts/log/logger.js';
import type { HostEntry } from '../shared/hosts/host-section.js';
import { type DoorSettings, guardDoor, probesNeedToken } from './http-auth.js';
import type { SecuritySection } from './security-section.js';

/** What `/readyz` reports: each dependency the gateway needs, and whether all are usable. */
export interface HealthReport {
  ok: boolean;
  checks: Record<string, { ok: boolean; detail?: string }>;
  /** Weakened settings (security-section.ts): shown, never counted against readiness. */
  security?: SecuritySection;
  /** Each host workers run on, its health and conversations (src/shared/hosts/host-section.ts). */
  hosts?: HostEntry[];
}

export interface HttpServerOptions {
  config: Pick<Config, 'SANDBOT_MAX_MESSAGE_CHARS'> & DoorSettings;
  logger: Logger;
  health: () => Promise<HealthReport>;
}

const JSON_EXAMPLE = '{"conversation":"my-chat","user":"me","text":"hello"}';

type CompilersFactory = NonNullable<
  NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']
>;

/** fastify's default validator and serializer factories, each loaded (from fastify's own dependencies) on first use. */
function lazySchemaCompilers(): Required<CompilersFactory> {
  const fromFastify = createRequire(createRequire(import.meta.url).resolve('fastify'));
  const lazy = <F extends (...args: never[]) => unknown>(name: string): F => {
    let build: F | undefined;
    return ((...args: Parameters<F>) => {
      build ??= (fromFastify(name) as () => F)();
      return build(...args);
    }) as F;
  };
  return {
    buildValidator: lazy<Required<CompilersFactory>['buildValidator']>('@fastify/ajv-compiler'),
    buildSerializer: lazy<Required<CompilersFactory>['buildSerializer']>(
      '@fastify/fast-json-stringify-compiler',
    ),
  };
}

/**
 * The gateway's HTTP server: health, logging and error answers. Routes are registered; the caller
 * listens. The chat adapters (web chat, Slack's Events API) and /metrics add their own routes.
 */
export function createHttpServer(options: HttpServerOptions) {
  const { config } = options;
  const log = options.logger.child({ component: 'http' });
  const maxChars = config.SANDBOT_MAX_MESSAGE_CHARS;
  // Room for the longest text even if every character arrives as a 6-byte JSON escape.
  const bodyLimit = maxChars * 6 + 16_384;
  const app = Fastify({
    // Bodies are parsed with zod, no route declares a JSON schema: fastify's own compilers (ajv,
    // fast-json-stringify; ≈50 ms of every start) load only if one ever does.
    schemaController: { compilersFactory: lazySchemaCompilers() },
    loggerInstance: log,
    // Our own log line (onResponse below) leaves out the query string, which may hold the API token.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit,
    forceCloseConnections: true, // open event streams must not hold up shutdown
    return503OnClosing: true,
  });
  // Only JSON bodies: a browser cannot send those cross-site without a CORS preflight, which we never allow.
  app.removeContentTypeParser('text/plain');

  app.addHook('onResponse', async (request, reply) => {
    log.debug(
      {
        method: request.method,
        route: request.routeOptions.url,
        status: reply.statusCode,
        ms: reply.elapsedTime,
      },
      'request',
    );
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = error.statusCode ?? 500;
    if (status >= 500) {
      log.error({ err: error, route: request.routeOptions.url }, 'request failed');
      return sendError(reply, 500, 'internal error: see the gateway log');
    }
    return sendError(reply, status, clientErrorText(error, bodyLimit, maxChars));
  });

  app.setNotFoundHandler((request, reply) =>
    sendError(reply, 404, `no route ${request.method} ${request.url.split('?')[0]}`),
  );

  // Says nothing but "up": open to any Host and without the token (orchestrators probe it by address).
  app.get('/healthz', async () => ({ status: 'ok' }));

  // Readiness names the dependencies and their errors: the Host guard, and the token beyond loopback.
  const probeDoor = { tokenRequired: probesNeedToken(config) };
  app.get(
    '/readyz',
    { onRequest: (request, reply) => guardDoor(request, reply, config, probeDoor) },
    async (_request, reply) => {
      const report = await options.health().catch(
        (error: unknown): HealthReport => ({
          ok: false,
          checks: { health: { ok: false, detail: String(error) } },
        }),
      );
      return reply.code(report.ok ? 200 : 503).send({ status: report.ok ? 'ready' : 'not ready', ...report });
    },
  );

  return app;
}

export type HttpServer = ReturnType<typeof createHttpServer>;

/** An error answer: `{ error }` as JSON, in words that say what to do. */
export function sendError(reply: FastifyReply, status: number, error: string): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send({ error });
}

/** Fastify's own client errors, in words that say what to send instead. */
function clientErrorText(error: FastifyError, bodyLimit: number, maxChars: number): string {
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return `body is not valid JSON: send a JSON object like ${JSON_EXAMPLE}`;
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return `body is empty: send a JSON object like ${JSON_EXAMPLE}`;
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return `body is larger than ${bodyLimit} bytes: text may be at most ${maxChars} characters`;
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'content-type must be application/json';
    default:
      return error.message;
  }
}
