import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../../src/contracts/config/schema.js';
import {
  type ConversationId,
  WebSessionName,
  webConversationId,
} from '../../src/contracts/conversation/id.js';
import type { Logger } from '../../src/contracts/log/logger.js';
import { type DoorSettings, guardDoor, isLoopback } from '../../src/gateway/http-auth.js';
import { type HttpServer, sendError } from '../../src/gateway/http-server.js';
import { limitNotice, STREAM_RETRY_SECONDS, streamRefusalText } from '../../src/gateway/rate-limits.js';
import { registerApprovalRoutes } from './approval-routes.js';
import { STREAM_ID } from './event-stream.js';
import { describeIssues, postMessageBody, toInboundMessage } from './message-request.js';
import { CHAT_PAGE_HEADERS, renderChatPage } from './page.js';
import type { WebAdapterDeps } from './ports.js';
import { registerScheduleRoutes } from './schedule-routes.js';
import { pipeSse } from './sse.js';

export const EVENTS_ROUTE = '/api/conversations/:conversation/events';

export interface WebRouteOptions {
  config: Pick<Config, 'SANDBOT_MAX_MESSAGE_CHARS' | 'SANDBOT_APPROVERS'> & DoorSettings;
  logger: Logger;
  /** Comment lines keep idle event streams open through proxies. */
  sseHeartbeatMs?: number;
}

type Scope = FastifyInstance;

/**
 * The web chat on the gateway's HTTP server: the page at `/`, `POST /api/messages`, the event
 * stream, the schedules API and the approval buttons' route, behind the DNS-rebinding guard and (when SANDBOT_API_TOKEN is set) the API token.
 */
export function registerWebRoutes(http: HttpServer, web: WebAdapterDeps, options: WebRouteOptions): void {
  const { config } = options;
  const log = options.logger.child({ component: 'http' });
  // A plugin scope: the guard hook covers these routes only.
  void http.register(async (scope) => {
    scope.addHook('onRequest', async (request, reply) => guard(request, reply, config));
    const page = renderChatPage({
      tokenRequired: config.SANDBOT_API_TOKEN !== undefined,
      maxMessageChars: config.SANDBOT_MAX_MESSAGE_CHARS,
    });
    scope.get('/', async (_request, reply) => reply.headers(CHAT_PAGE_HEADERS).send(page));
    registerPostMessage(scope, web, log, config.SANDBOT_MAX_MESSAGE_CHARS);
    registerEventStream(scope, web, log, options.sseHeartbeatMs ?? 15_000);
    if (web.schedules) registerScheduleRoutes(scope, web.schedules, log, config.SANDBOT_MAX_MESSAGE_CHARS);
    if (web.approvals) registerApprovalRoutes(scope, web.approvals, config, log);
  });
}

/**
 * The page is open (it holds no data and asks for the token); the API needs the token when one is set,
 * and always beyond loopback (where the gateway refuses to start without one: fail closed regardless).
 */
function guard(
  request: FastifyRequest,
  reply: FastifyReply,
  config: WebRouteOptions['config'],
): Promise<FastifyReply | undefined> {
  const route = request.routeOptions.url;
  return guardDoor(request, reply, config, {
    tokenRequired:
      route !== '/' && (config.SANDBOT_API_TOKEN !== undefined || !isLoopback(config.SANDBOT_HTTP_HOST)),
    queryToken: route === EVENTS_ROUTE,
  });
}

function registerPostMessage(scope: Scope, web: WebAdapterDeps, log: Logger, maxChars: number): void {
  const bodySchema = postMessageBody(maxChars);
  scope.post('/api/messages', async (request, reply) => {
    const parsed = bodySchema.safeParse(request.body);
    if (!parsed.success) return sendError(reply, 400, describeIssues(parsed.error));
    const message = toInboundMessage(parsed.data);
    try {
      const admission = await web.limits?.admit({
        platform: 'web',
        user: message.user.id,
        messageId: message.id,
        conversation: message.conversation,
      });
      if (admission && !admission.allowed) {
        reply.header('retry-after', String(admission.retryAfterSeconds));
        return sendError(reply, 429, `message not accepted: ${limitNotice(admission)}`);
      }
      await web.submitter.submit(message);
    } catch (error) {
      log.warn({ err: error, conversation: message.conversation }, 'submitting a web message failed');
      return sendError(
        reply,
        503,
        'message not accepted: the queue is unavailable (is Redis up?); try again shortly',
      );
    }
    return reply.code(202).send({ conversation: parsed.data.conversation, messageId: message.id });
  });
}

function registerEventStream(scope: Scope, web: WebAdapterDeps, log: Logger, heartbeatMs: number): void {
  // No HEAD twin: it would hold a stream open with nothing to send.
  scope.get<{ Params: { conversation: string } }>(
    EVENTS_ROUTE,
    { exposeHeadRoute: false },
    async (request, reply) => {
      const session = WebSessionName.safeParse(request.params.conversation);
      if (!session.success) return sendError(reply, 400, describeIssues(session.error, 'conversation'));
      const resumeFrom = lastEventId(request);
      if (resumeFrom !== undefined && !STREAM_ID.test(resumeFrom)) {
        return sendError(reply, 400, 'Last-Event-ID must be an id this stream sent, like "1700000000000-0"');
      }
      const conversation = webConversationId(session.data);
      let from: string;
      try {
        // Fixed before the headers go out: a client that sees the response open misses nothing after it.
        from = resumeFrom ?? (await web.events.position(conversation));
      } catch (error) {
        log.warn({ err: error, conversation }, 'opening a web event stream failed');
        return sendError(reply, 503, 'event stream unavailable (is Redis up?); try again shortly');
      }
      const slot = await openSlot(web, conversation).catch((error: unknown) => error as Error);
      if (slot instanceof Error) {
        log.warn({ err: slot, conversation }, 'opening a web event stream failed');
        return sendError(reply, 503, 'event stream unavailable (is Redis up?); try again shortly');
      }
      if (!slot.allowed) {
        reply.header('retry-after', String(STREAM_RETRY_SECONDS));
        return sendError(reply, 429, streamRefusalText(slot));
      }
      reply.hijack();
      await pipeSse(reply.raw, (signal) => web.events.subscribe(conversation, from, signal), {
        heartbeatMs,
        onError: (error) =>
          log.warn({ err: error, conversation }, 'web event stream failed; the client will reconnect'),
      }).finally(() => slot.close());
    },
  );
}

/** A stream's slot under the caps (always one without limits). */
function openSlot(web: WebAdapterDeps, conversation: ConversationId) {
  return (
    web.limits?.openStream(conversation) ?? Promise.resolve({ allowed: true as const, close: async () => {} })
  );
}

/** The header EventSource sends on reconnect; the query form lets a reloaded page resume too. */
function lastEventId(request: FastifyRequest): string | undefined {
  const header = request.headers['last-event-id'];
  if (typeof header === 'string' && header !== '') return header;
  const query = (request.query as Record<string, unknown> | undefined)?.lastEventId;
  return typeof query === 'string' && query !== '' ? query : undefined;
}
