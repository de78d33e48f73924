import { createRequire } from 'node:module';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
  LogController,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import { bearerToken, hostAllowed, isLoopback, tokenMatches } from '../../adapters/web/auth.js';
import { STREAM_ID } from '../../adapters/web/event-stream.js';
import { describeIssues, postMessageBody, toInboundMessage } from '../../adapters/web/message-request.js';
import { CHAT_PAGE_HEADERS, renderChatPage } from '../../adapters/web/page.js';
import type { WebAdapterDeps } from '../../adapters/web/ports.js';
import { pipeSse } from '../../adapters/web/sse.js';
import type { Config } from '../contracts/config/schema.js';
import { WebSessionName, webConversationId } from '../contracts/conversation/id.js';
import type { Logger } from '../contracts/log/logger.js';

/** What `/readyz` reports: each dependency the gateway needs, and whether all are usable. */
export interface HealthReport {
  ok: boolean;
  checks: Record<string, { ok: boolean; detail?: string }>;
}

export interface HttpServerOptions {
  config: Pick<Config, 'SANDBOT_API_TOKEN' | 'SANDBOT_MAX_MESSAGE_CHARS' | 'SANDBOT_HTTP_HOST'>;
  logger: Logger;
  /** Present when the web chat is enabled: serves `/`, `POST /api/messages` and the event stream. */
  web?: WebAdapterDeps;
  health: () => Promise<HealthReport>;
  /** Comment lines keep idle event streams open through proxies. */
  sseHeartbeatMs?: number;
}

const EVENTS_ROUTE = '/api/conversations/:conversation/events';
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
 * The gateway's HTTP server: health, and (when enabled) the web chat page and its API. Routes are
 * registered; the caller listens. More routes (e.g. /metrics) may be added to the returned instance.
 */
export function createHttpServer(options: HttpServerOptions) {
  const { config, web } = options;
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

  app.addHook('onRequest', async (request, reply) => {
    const route = request.routeOptions.url;
    if (route !== '/' && !route?.startsWith('/api/')) return;
    if (!hostAllowed(request.headers.host, config.SANDBOT_HTTP_HOST)) {
      return refuse(reply, 403, 'this server answers only to localhost names (DNS-rebinding guard)');
    }
    const token = config.SANDBOT_API_TOKEN;
    if (token === undefined || route === '/') return;
    const presented =
      bearerToken(request.headers.authorization) ??
      (route === EVENTS_ROUTE ? queryToken(request) : undefined);
    if (!tokenMatches(presented, token)) {
      reply.header('www-authenticate', 'Bearer');
      return refuse(
        reply,
        401,
        route === EVENTS_ROUTE
          ? 'missing or wrong API token: send "Authorization: Bearer <token>" or add ?token=<token>'
          : 'missing or wrong API token: send "Authorization: Bearer <token>" (the SANDBOT_API_TOKEN)',
      );
    }
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = error.statusCode ?? 500;
    if (status >= 500) {
      log.error({ err: error, route: request.routeOptions.url }, 'request failed');
      return refuse(reply, 500, 'internal error: see the gateway log');
    }
    return refuse(reply, status, clientErrorText(error, bodyLimit, maxChars));
  });

  app.setNotFoundHandler((request, reply) =>
    refuse(reply, 404, `no route ${request.method} ${request.url.split('?')[0]}`),
  );

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const report = await options.health().catch(
      (error: unknown): HealthReport => ({
        ok: false,
        checks: { health: { ok: false, detail: String(error) } },
      }),
    );
    return reply.code(report.ok ? 200 : 503).send({ status: report.ok ? 'ready' : 'not ready', ...report });
  });

  if (web) {
    if (config.SANDBOT_API_TOKEN === undefined && !isLoopback(config.SANDBOT_HTTP_HOST)) {
      log.warn(
        { host: config.SANDBOT_HTTP_HOST },
        'the web chat is reachable beyond this machine and SANDBOT_API_TOKEN is not set: anyone who reaches it can drive the agent',
      );
    }
    registerWebRoutes(app, web, { ...options, log, maxChars });
  }
  return app;
}

export type HttpServer = ReturnType<typeof createHttpServer>;

type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger>;

function registerWebRoutes(
  app: App,
  web: WebAdapterDeps,
  options: HttpServerOptions & { log: Logger; maxChars: number },
): void {
  const { log, maxChars } = options;
  const page = renderChatPage({
    tokenRequired: options.config.SANDBOT_API_TOKEN !== undefined,
    maxMessageChars: maxChars,
  });
  const bodySchema = postMessageBody(maxChars);

  app.get('/', async (_request, reply) => reply.headers(CHAT_PAGE_HEADERS).send(page));

  app.post('/api/messages', async (request, reply) => {
    const parsed = bodySchema.safeParse(request.body);
    if (!parsed.success) return refuse(reply, 400, describeIssues(parsed.error));
    const message = toInboundMessage(parsed.data);
    try {
      await web.submitter.submit(message);
    } catch (error) {
      log.warn({ err: error, conversation: message.conversation }, 'submitting a web message failed');
      return refuse(
        reply,
        503,
        'message not accepted: the queue is unavailable (is Redis up?); try again shortly',
      );
    }
    return reply.code(202).send({ conversation: parsed.data.conversation, messageId: message.id });
  });

  // No HEAD twin: it would hold a stream open with nothing to send.
  app.get<{ Params: { conversation: string } }>(
    EVENTS_ROUTE,
    { exposeHeadRoute: false },
    async (request, reply) => {
      const session = WebSessionName.safeParse(request.params.conversation);
      if (!session.success) return refuse(reply, 400, describeIssues(session.error, 'conversation'));
      const resumeFrom = lastEventId(request);
      if (resumeFrom !== undefined && !STREAM_ID.test(resumeFrom)) {
        return refuse(reply, 400, 'Last-Event-ID must be an id this stream sent, like "1700000000000-0"');
      }
      const conversation = webConversationId(session.data);
      let from: string;
      try {
        // Fixed before the headers go out: a client that sees the response open misses nothing after it.
        from = resumeFrom ?? (await web.events.position(conversation));
      } catch (error) {
        log.warn({ err: error, conversation }, 'opening a web event stream failed');
        return refuse(reply, 503, 'event stream unavailable (is Redis up?); try again shortly');
      }
      reply.hijack();
      await pipeSse(reply.raw, (signal) => web.events.subscribe(conversation, from, signal), {
        heartbeatMs: options.sseHeartbeatMs ?? 15_000,
        onError: (error) =>
          log.warn({ err: error, conversation }, 'web event stream failed; the client will reconnect'),
      });
    },
  );
}

function refuse(reply: FastifyReply, status: number, error: string): FastifyReply {
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

function queryToken(request: FastifyRequest): string | undefined {
  const token = (request.query as Record<string, unknown> | undefined)?.token;
  return typeof token === 'string' ? token : undefined;
}

/** The header EventSource sends on reconnect; the query form lets a reloaded page resume too. */
function lastEventId(request: FastifyRequest): string | undefined {
  const header = request.headers['last-event-id'];
  if (typeof header === 'string' && header !== '') return header;
  const query = (request.query as Record<string, unknown> | undefined)?.lastEventId;
  return typeof query === 'string' && query !== '' ? query : undefined;
}
